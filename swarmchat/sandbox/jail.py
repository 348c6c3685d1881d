"""The trampoline every confined run starts through: limits, identity, confinement, exec.

Run as a script (``python3 -I -S jail.py SPEC -- argv...``), in this order, it asks for
SIGKILL if swarmchat dies, joins the run's cgroups (while it may still write them),
becomes the unprivileged uid the run uses (when swarmchat is root and the runtime allows
it), then sets rlimits, applies Landlock, drops every capability and loads the seccomp
filter (``landlock.py``, ``privileges.py``, ``seccomp.py``), closes inherited descriptors
and execs. Without a pid namespace it stays behind as the run's supervisor and reaper.

Standard library only, and cheap to start (its imports are part of every run's
overhead): it runs with whatever interpreter swarmchat has, which may lack swarmchat's
dependencies. Imported, it re-exports the primitives the tiers need.
"""

from __future__ import annotations

import os
import resource
import sys
import time

if __package__:
    from . import landlock, privileges, seccomp
else:  # run by path: the sibling modules, without importing the package
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import landlock  # type: ignore[import-not-found, no-redef]
    import privileges  # type: ignore[import-not-found, no-redef]
    import seccomp  # type: ignore[import-not-found, no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import Any
else:  # the C module under ``signal``: the same calls, without importing enum
    import _signal

signal = _signal
landlock_abi = landlock.abi
apply_landlock = landlock.apply
seccomp_supported = seccomp.supported
seccomp_program = seccomp.program
install_seccomp = seccomp.install


def _confine_and_exec(spec: dict[str, Any], command: list[str]) -> None:
    """Apply limits and confinement to this process, then become ``command``."""
    for name, value in spec.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if spec.get("landlock") is not None:
        ll = spec["landlock"]
        landlock.apply(ll["ro"], ll["rw"], ll["network"])
    if spec.get("drop_caps"):
        privileges.drop_capabilities()
    if spec.get("seccomp"):
        network = spec.get("network", False)
        seccomp.install(seccomp.program(allow_inet=network, allow_unix_connect=network, allow_metadata=False))
    low = 3
    for fd in sorted(spec.get("keep_fds", [])):  # e.g. bubblewrap's seccomp program
        os.closerange(low, fd)
        os.set_inheritable(fd, True)
        low = fd + 1
    os.closerange(low, 65536)
    os.execve(command[0], command, spec.get("env", {}))


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    if int(f.read().rsplit(") ", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _kill_descendants() -> None:
    """As a subreaper every orphan of the run becomes our child: kill children until none
    is left (each kill re-parents the grandchildren to us)."""
    me = os.getpid()
    for _ in range(500):
        try:  # the usual case, no child at all (not even a zombie): no scan of /proc
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        kids = _children(me)
        if not kids:
            return
        for kid in kids:
            try:  # noqa: SIM105 (contextlib would cost start-up time)
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:  # reap what died
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(0.005)


def _supervise(spec: dict[str, Any], command: list[str]) -> None:
    """Stay as the parent of the confined command (tiers without a pid namespace): adopt
    orphans as a subreaper, and kill the whole tree when the command exits, when swarmchat
    says so (SIGTERM) or when swarmchat dies (the parent-death signal).

    The code cannot take this process down with it: it runs in another Landlock domain
    (from ABI 6 no signal crosses it), and the seccomp filter refuses prlimit, setpriority
    and affinity changes aimed at any other process, this one included."""
    privileges.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    privileges.die_with_parent(signal.SIGTERM)  # a chance to clean up

    def stop(signum: int, frame: object) -> None:
        _kill_descendants()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    if os.getppid() != spec.get("parent", os.getppid()):
        stop(signal.SIGTERM, None)
    child = os.fork()
    if child == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            privileges.die_with_parent(signal.SIGKILL)  # dies if the supervisor dies
            _confine_and_exec(spec, command)
        except Exception as exc:
            sys.stderr.write(f"swarmchat-jail: {exc}\n")
        os._exit(126)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            break
    _kill_descendants()
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, like a shell


class _JsonContext:
    """What the C JSON scanner reads from ``json.JSONDecoder``."""

    strict = True
    object_hook = object_pairs_hook = array_hook = parse_constant = None
    parse_float, parse_int = float, int


def parse_spec(text: str) -> dict[str, Any]:
    """``json.loads`` without importing ``json`` (it pulls in ``re`` and ``enum``: half of
    this script's start-up, paid on every run); ``json`` itself where that fails."""
    try:
        from _json import make_scanner

        value, end = make_scanner(_JsonContext())(text, 0)  # type: ignore[arg-type]
        if end == len(text) and isinstance(value, dict):
            return value
    except Exception:
        pass
    import json

    spec = json.loads(text)
    assert isinstance(spec, dict)
    return spec


def _orphaned(spec: dict[str, Any]) -> bool:
    return bool(os.getppid() != spec.get("parent", os.getppid()))


def main(argv: list[str]) -> None:
    """``jail.py SPEC_JSON -- command...``: confine the command and run it."""
    try:
        spec = parse_spec(argv[1])
        command = argv[argv.index("--") + 1 :]
        privileges.die_with_parent(signal.SIGKILL)  # die with swarmchat
        if _orphaned(spec):
            os._exit(137)  # the parent is already gone
        for procs in spec.get("cgroups", []):  # join the run's cgroups (fail closed)
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        if spec.get("run_as"):
            privileges.drop_bounding_set()  # as uid 65534 it could no longer be emptied
            privileges.become(*spec["run_as"])
            privileges.die_with_parent(signal.SIGKILL)  # the uid change cleared it
            if _orphaned(spec):
                os._exit(137)
        if spec.get("supervise"):
            _supervise(spec, command)
        _confine_and_exec(spec, command)
    except Exception as exc:
        sys.stderr.write(f"swarmchat-jail: {exc}\n")
        os._exit(126)


if __name__ == "__main__":
    main(sys.argv)
