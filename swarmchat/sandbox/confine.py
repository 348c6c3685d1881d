"""How each isolation tier confines a run: the command lines, not the running of them.

Tier 1 wraps the interpreter in bubblewrap (fresh namespaces, an empty root with
read-only system directories, the workspace as the only writable host path). Tier 2
applies Landlock and seccomp from a trampoline (``jail.py``) when user namespaces are not
available. Both start through ``jail.py``, which sets rlimits and dies with swarmchat.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from swarmchat.sandbox.runtime import Runtime

__all__ = ["Limits", "Runtime", "bwrap_argv", "etc_files", "jail_argv", "landlock_paths", "sandbox_env"]

JAIL = str(Path(__file__).with_name("jail.py"))
NOBODY = (65534, 65534)  # the unprivileged uid and gid code runs as when swarmchat is root
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# Only what programs need from /etc: never shadow, ssh keys or the host's users.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "nsswitch.conf",
    "mime.types",
    "fonts",
    "matplotlibrc",
    "protocols",
    "services",
)
NET_ETC_FILES = ("resolv.conf", "hosts", "gai.conf", "host.conf")


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits. rlimits bind each process (NPROC: the whole uid); the
    cgroup limits bind the run as a whole, where a cgroup can be made (``cgroups.py``)."""

    memory_bytes: int = 4 << 30  # RLIMIT_AS, per process
    processes: int = 256  # pids cgroup, and RLIMIT_NPROC above what the uid already runs
    open_files: int = 1024
    file_bytes: int = 64 << 20  # RLIMIT_FSIZE: no single file grows past this
    tmp_bytes: int = 256 << 20
    cpu_grace_seconds: int = 5
    run_memory_bytes: int = 1 << 30  # memory cgroup: every process of the run together

    def rlimits(self, timeout: float, user_processes: int) -> dict[str, int]:
        return {
            "RLIMIT_CPU": int(timeout) + self.cpu_grace_seconds,
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_NPROC": user_processes + self.processes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_CORE": 0,
            "RLIMIT_RTPRIO": 0,  # no real-time scheduling (seccomp refuses it too)
            "RLIMIT_NICE": 0,  # may become nicer, never less nice
        }


def user_process_count(uid: int | None = None) -> int:
    """Processes ``uid`` (default: ours) runs now: RLIMIT_NPROC counts them all, so the
    limit adds to it."""
    uid, count = os.getuid() if uid is None else uid, 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def sandbox_env(
    workspace: Path, runtime: Runtime, tmp: str = "/tmp", user: str | None = None
) -> dict[str, str]:
    """The whole environment agent code sees: an allowlist, no secrets."""
    user = user or _user()
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": str(workspace),
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "TERM": "dumb",
        "USER": user,
        "LOGNAME": user,
        "MPLCONFIGDIR": f"{tmp}/matplotlib",
        "XDG_CACHE_HOME": f"{tmp}/cache",
    }
    if runtime.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(runtime.pythonpath)
    return env


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "sandbox"


def user_name(uid: int) -> str:
    """The name code sees for itself: ours, or ``nobody`` when it runs as 65534."""
    return "nobody" if uid == NOBODY[0] and os.getuid() != uid else _user()


def etc_files(home: Path, uid: int, gid: int) -> dict[str, bytes]:
    """Synthetic ``/etc/passwd`` and ``/etc/group`` naming only the sandbox user, for
    bubblewrap's ``--ro-bind-data`` (from pipes: nothing to write, nothing to clean up)."""
    user = user_name(uid)
    passwd = f"{user}:x:{uid}:{gid}:{user}:{home}:/bin/sh\n"
    group = f"{user}:x:{gid}:\n"
    if uid != NOBODY[0]:
        passwd += "nobody:x:65534:65534::/:/usr/sbin/nologin\n"
        group += "nogroup:x:65534:\n"
    return {"passwd": passwd.encode(), "group": group.encode()}


_BWRAP_ISOLATION = (  # every namespace, no nested ones, no capabilities, dies with swarmchat
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--assert-userns-disabled",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
)


def bwrap_argv(
    bwrap: str,
    runtime: Runtime,
    workspace: Path,
    *,
    network: bool,
    limits: Limits,
    etc_fds: dict[str, int],
    seccomp_fd: int | None,
    user: str | None = None,
) -> list[str]:
    """The bubblewrap command that runs ``runtime`` confined to ``workspace``."""
    ws = str(workspace)
    argv = [bwrap, *_BWRAP_ISOLATION, *(["--share-net"] if network else []), *_system_binds(network, etc_fds)]
    argv += [
        "--dev",
        "/dev",
        "--size",
        str(8 << 20),
        "--tmpfs",
        "/dev/shm",
        "--proc",
        "/proc",
        *_proc_masks(),
    ]
    argv += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp", "--bind", ws, ws]
    # Read-only binds come after the workspace, so an interpreter or venv that lives inside
    # the workspace stays read-only.
    for path in runtime.read_only:
        argv += ["--ro-bind-try", path, path]
    argv += ["--remount-ro", "/", "--chdir", ws, "--clearenv"]
    for key, value in sandbox_env(workspace, runtime, user=user).items():
        argv += ["--setenv", key, value]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv


@cache
def _proc_masks() -> tuple[str, ...]:
    """A fresh /proc is the kernel's own: as (namespaced) root its sysctls are writable
    (``kernel.core_pattern`` runs a program as host root). As Docker does: /proc/sys and
    other kernel knobs read-only, files that leak kernel memory or keys masked."""
    argv: list[str] = []
    for name in ("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi"):
        if os.path.exists(f"/proc/{name}"):
            argv += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
    for name in ("kcore", "keys", "key-users", "timer_list", "sched_debug", "latency_stats"):
        if os.path.exists(f"/proc/{name}"):
            argv += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    return tuple(argv)


def _system_binds(network: bool, etc_fds: dict[str, int]) -> list[str]:
    """Read-only /usr and its top-level links, and only the /etc files programs need."""
    argv = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/" + top)
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), "/" + top]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), "/" + top]
    argv += ["--dir", "/etc"]
    for name in ETC_FILES + (NET_ETC_FILES if network else ()):
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name, fd in etc_fds.items():
        argv += ["--ro-bind-data", str(fd), f"/etc/{name}"]
    return argv


def jail_argv(spec: dict[str, object], command: list[str]) -> list[str]:
    """Start ``command`` through the trampoline with the host's own interpreter."""
    return [sys.executable, "-I", "-S", JAIL, json.dumps(spec), "--", *command]


def landlock_paths(runtime: Runtime, workspace: Path, tmp: str, network: bool) -> dict[str, object]:
    """Read-only system paths (no /proc, no home), read-write workspace and private tmp."""
    ro = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", *runtime.read_only]
    ro += [f"/etc/{n}" for n in ETC_FILES + (NET_ETC_FILES if network else ())]
    ro += ["/dev/urandom", "/dev/random", "/dev/zero"]
    # /dev/shm is shared with the host: POSIX semaphores (multiprocessing locks) need it.
    return {"ro": ro, "rw": [str(workspace), tmp, "/dev/null", "/dev/shm"], "network": network}
