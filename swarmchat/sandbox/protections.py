"""What a tier actually guarantees here, checked from inside it, for ``swarmchat doctor``.

A tier's probe run does more than print a word: it reports what the code inside sees
(uid, capabilities, whether /proc/sys is writable, whether a setuid bit sticks). A tier
whose probe shows a promise broken is not used at all; the rest is reported as a list of
:class:`Protection` items, each honest about this machine (kernel, uid, cgroups).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from swarmchat.sandbox import TierName
from swarmchat.sandbox.landlock import SIGNAL_SCOPE_ABI

PROBE = r"""
import json, os
facts = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
    if libc.capget(header, data) == 0:
        facts["caps"] = [data[0] | data[3] << 32, data[1] | data[4] << 32, data[2] | data[5] << 32]
    facts["bounding"] = sum(1 for cap in range(64) if libc.prctl(23, cap, 0, 0, 0) == 1)
    facts["no_new_privs"] = libc.prctl(39, 0, 0, 0, 0)
except Exception:
    pass
try:
    open("/proc/sys/kernel/core_pattern", "a").close()  # opened, never written
    facts["proc_sys"] = "writable"
except OSError as e:
    facts["proc_sys"] = e.strerror
open("probe-setuid", "w").close()
try:
    os.chmod("probe-setuid", 0o4755)
    facts["setuid"] = "allowed" if os.stat("probe-setuid").st_mode & 0o4000 else "dropped"
except OSError as e:
    facts["setuid"] = e.strerror
print("sandbox-ok")
print(json.dumps(facts))
"""


@dataclass(frozen=True)
class Protection:
    """One guarantee of a tier: whether it holds on this machine, and why (not)."""

    name: str
    in_force: bool
    detail: str


def parse_probe(stdout: str) -> dict[str, Any] | None:
    """The facts a probe run reported, or None when it did not say ``sandbox-ok``."""
    lines = stdout.strip().splitlines()
    if not lines or lines[0] != "sandbox-ok":
        return None
    try:
        facts = json.loads(lines[1]) if len(lines) > 1 else {}
    except ValueError:
        return None
    return facts if isinstance(facts, dict) else None


def broken_promises(facts: dict[str, Any]) -> list[str]:
    """Why a tier must not be used, from what its probe saw inside."""
    found = []
    if any(facts.get("caps", [0])):
        found.append(f"code kept capabilities {facts['caps']}")
    if facts.get("proc_sys") == "writable":
        found.append("/proc/sys is writable")
    if facts.get("setuid") == "allowed":
        found.append("a setuid bit could be set")
    return found


@dataclass(frozen=True)
class Context:
    """What ``describe`` needs besides the probe's facts."""

    tier: TierName
    landlock_abi: int
    swarmchat_uid: int
    run_as: tuple[int, int] | None
    run_as_reason: str
    cgroup_limits: dict[str, int]
    cgroup_reason: str
    parallel_runs: int
    memory_rlimit: int


def describe(ctx: Context, facts: dict[str, Any]) -> list[Protection]:
    """Every guarantee of ``ctx.tier`` in force or not here, in a fixed order."""
    bwrap = ctx.tier == "bwrap"
    uid = facts.get("uid", -1)
    caps = facts.get("caps")
    out = [
        Protection(
            "process isolation",
            bwrap,
            "own pid, mount, network, IPC and UTS namespaces: no host process is visible"
            if bwrap
            else "no namespaces: host processes exist by pid; the jail reaps the run's process tree",
        ),
        Protection(
            "no capabilities",
            caps is not None and not any(caps) and facts.get("no_new_privs") == 1,
            "unknown: the runtime has no ctypes"
            if caps is None
            else f"effective/permitted/inheritable {caps}, bounding set {facts.get('bounding')} left, "
            f"no_new_privs {facts.get('no_new_privs')}"
            + (", securebits locked: uid 0 regains nothing on exec" if uid == 0 and not bwrap else ""),
        ),
        Protection(
            "/proc/sys read-only",
            facts.get("proc_sys") != "writable",
            (
                "a fresh /proc with /proc/sys, sysrq-trigger, irq, bus, fs read-only, kcore/keys masked"
                if bwrap
                else "/proc is outside the Landlock rules"
            )
            + f" (writing core_pattern: {facts.get('proc_sys')})",
        ),
        Protection("unprivileged uid", uid not in (0, -1), _uid_detail(ctx, uid)),
        Protection(
            "setuid/setgid files refused",
            facts.get("setuid") not in ("allowed", None),
            f"seccomp refuses chmod/open/mkdir with S_ISUID or S_ISGID, and mknod (chmod u+s: "
            f"{facts.get('setuid')})",
        ),
        Protection(
            "host files' modes, owners, times and xattrs",
            True,
            "host paths are read-only mounts"
            if bwrap
            else "chmod, chown, utime and xattr calls do nothing (Landlock cannot confine them)",
        ),
        Protection(
            "private /tmp and /dev/shm",
            bwrap,
            "size-capped tmpfs of the run's own for both"
            if bwrap
            else "/tmp is a directory of the run's own, but /dev/shm is the host's (POSIX semaphores "
            "need it): files left there outlive the run"
            + (", and as uid 0 code can change root's files there" if uid == 0 else ""),
        ),
        _cgroup(ctx, "memory", f"only RLIMIT_AS, {ctx.memory_rlimit >> 30} GiB per process"),
        _cgroup(ctx, "pids", "only RLIMIT_NPROC, counted per uid (not at all for root)"),
        _signals(ctx),
        Protection(
            "other processes' limits and scheduling",
            True,
            "seccomp refuses prlimit, setpriority, ioprio_set, sched_setaffinity/param/scheduler "
            "aimed at another process, and real-time policies",
        ),
        Protection(
            "network off by default",
            True,
            "own network namespace (loopback only) unless the agent has network: true"
            if bwrap
            else "seccomp refuses IP sockets and connect()"
            + (", Landlock refuses TCP" if ctx.landlock_abi >= 4 else ""),
        ),
        Protection(
            "parallel runs bounded",
            True,
            f"{ctx.parallel_runs} at a time (SWARMCHAT_MAX_PARALLEL_RUNS); more wait their turn",
        ),
    ]
    return out


def _uid_detail(ctx: Context, uid: int) -> str:
    if ctx.run_as is not None:
        return f"runs as uid {ctx.run_as[0]} (nobody), no supplementary groups"
    if uid not in (0, -1):
        return f"runs as uid {uid}, swarmchat's own (not root)"
    return f"runs as uid 0 without capabilities: {ctx.run_as_reason}"


def _cgroup(ctx: Context, controller: str, otherwise: str) -> Protection:
    limit = ctx.cgroup_limits.get(controller)
    if limit is None:
        return Protection(f"{controller} cgroup", False, f"{ctx.cgroup_reason}: {otherwise}")
    amount = f"{limit >> 20} MiB" if controller == "memory" else f"{limit} processes"
    return Protection(f"{controller} cgroup", True, f"{amount} per run, all its processes together")


def _signals(ctx: Context) -> Protection:
    if ctx.tier == "bwrap":
        return Protection("signals scoped to the run", True, "pid namespace: only the run's processes exist")
    if ctx.landlock_abi >= SIGNAL_SCOPE_ABI:
        return Protection(
            "signals scoped to the run",
            True,
            f"Landlock ABI {ctx.landlock_abi} refuses signals leaving the run",
        )
    who = ctx.run_as[0] if ctx.run_as else ctx.swarmchat_uid
    return Protection(
        "signals scoped to the run",
        False,
        f"Landlock ABI {ctx.landlock_abi} < {SIGNAL_SCOPE_ABI}: code can signal every process of uid {who} "
        "(seccomp cannot tell the run's own pids from others)",
    )
