"""Confinement primitives, and a tiny trampoline that applies them and execs a command.

Run as a script (``python3 -I -S jail.py SPEC -- argv...``) it is the fallback tier's
supervisor-side half: it sets rlimits, asks for SIGKILL if swarmchat dies, applies Landlock
(filesystem and TCP) and a seccomp filter (no IP sockets, no ptrace, io_uring, bpf,
keyctl...), closes inherited descriptors, then execs. Imported, it builds the same seccomp
program that bubblewrap loads with ``--seccomp``. Standard library only: it also runs
with an interpreter that has none of swarmchat's dependencies.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import resource
import signal
import struct
import sys
import time
from typing import Any

# seccomp ---------------------------------------------------------------------------------
_ARCH = {  # machine -> (AUDIT_ARCH, {syscall name: number})
    "x86_64": (
        0xC000003E,
        {
            "socket": 41,
            "ptrace": 101,
            "add_key": 248,
            "request_key": 249,
            "keyctl": 250,
            "perf_event_open": 298,
            "bpf": 321,
            "userfaultfd": 323,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "ioctl": 16,
            "connect": 42,
            "sendto": 44,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "socket": 198,
            "ptrace": 117,
            "add_key": 217,
            "request_key": 218,
            "keyctl": 219,
            "perf_event_open": 241,
            "bpf": 280,
            "userfaultfd": 282,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "ioctl": 29,
            "connect": 203,
            "sendto": 206,
        },
    ),
}
_DENIED = (
    "ptrace",
    "add_key",
    "request_key",
    "keyctl",
    "perf_event_open",
    "bpf",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_ALLOW, _KILL = 0x7FFF0000, 0x80000000
_ERRNO = 0x00050000
_AF_UNIX = 1
_TIOCSTI = 0x5412


def seccomp_supported() -> bool:
    return platform.machine() in _ARCH


def seccomp_program(allow_inet: bool, allow_unix_connect: bool = True) -> bytes:
    """A classic-BPF seccomp filter as raw ``struct sock_filter`` bytes.

    ``allow_unix_connect=False`` is for tiers that can see the host's filesystem (Landlock):
    there a Unix socket path could reach a host service, so ``connect`` is refused and
    ``sendto`` may not name an address.
    """
    arch, nr = _ARCH[platform.machine()]
    eperm = _ERRNO | 1
    ins: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ_K, 1, 0, arch),
        (_RET_K, 0, 0, _KILL),
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (_JGE_K, 0, 1, 0x40000000),  # x32 syscall numbers would dodge the checks below
        (_RET_K, 0, 0, _KILL),
    ]
    for name in _DENIED:
        ins += [(_JEQ_K, 0, 1, nr[name]), (_RET_K, 0, 0, eperm)]
    # ioctl(fd, TIOCSTI): no typing into a terminal
    ins += [
        (_JEQ_K, 0, 3, nr["ioctl"]),
        (_LD_W_ABS, 0, 0, 24),
        (_JEQ_K, 0, 1, _TIOCSTI),
        (_RET_K, 0, 0, eperm),
        (_LD_W_ABS, 0, 0, 0),
    ]
    if not allow_inet:  # socket(domain != AF_UNIX) fails: no TCP, UDP, raw, netlink
        ins += [
            (_JEQ_K, 0, 4, nr["socket"]),
            (_LD_W_ABS, 0, 0, 16),
            (_JEQ_K, 0, 1, _AF_UNIX),
            (_RET_K, 0, 0, _ALLOW),
            (_RET_K, 0, 0, _ERRNO | 97),
        ]  # EAFNOSUPPORT
    if not allow_unix_connect:
        ins += [
            (_JEQ_K, 0, 1, nr["connect"]),
            (_RET_K, 0, 0, _ERRNO | 13),  # EACCES
            (_JEQ_K, 0, 5, nr["sendto"]),
            (_LD_W_ABS, 0, 0, 48),
            (_JEQ_K, 0, 2, 0),
            (_LD_W_ABS, 0, 0, 52),
            (_JEQ_K, 1, 0, 0),
            (_RET_K, 0, 0, _ERRNO | 13),
        ]
    ins.append((_RET_K, 0, 0, _ALLOW))
    return b"".join(struct.pack("=HBBI", *i) for i in ins)


def install_seccomp(program: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(buf))  # struct sock_fprog
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    if (
        libc.prctl(
            22,
            ctypes.c_ulong(2),
            ctypes.c_void_p(ctypes.addressof(fbuf)),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
        != 0
    ):  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter")


# Landlock --------------------------------------------------------------------------------
_FS_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read file, read dir
_FS_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}


def _syscall() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.restype = ctypes.c_long
    return fn


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    try:
        v = _syscall()(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(v), 0)


def apply_landlock(read_only: list[str], read_write: list[str], network: bool) -> int:
    """Restrict this process (and what it execs) to these paths; deny TCP unless network.
    Returns the ABI used. Raises OSError when it cannot be enforced (fail closed)."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    sc = _syscall()
    fs_all = _FS_ALL_BY_ABI.get(abi, (1 << 16) - 1)
    net = 0 if network or abi < 4 else 0b11  # bind + connect TCP
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets, signals outside the domain
    attr = struct.pack("=QQQ", fs_all, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    fd = sc(444, ctypes.c_char_p(attr[:size]), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for paths, access in ((read_only, _FS_READ), (read_write, fs_all)):
            for path in paths:
                try:
                    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    is_dir = os.path.isdir(path)
                    allowed = access if is_dir else access & ((1 << 0) | (1 << 1) | (1 << 2) | (1 << 14))
                    rule = struct.pack("=Qi", allowed & fs_all, pfd)
                    if (
                        sc(445, ctypes.c_int(fd), ctypes.c_int(1), ctypes.c_char_p(rule), ctypes.c_uint32(0))
                        != 0
                    ):
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
                finally:
                    os.close(pfd)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(38, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if sc(446, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(fd)
    return abi


# trampoline ------------------------------------------------------------------------------


def _confine_and_exec(spec: dict[str, Any], command: list[str]) -> None:
    """Apply limits and confinement to this process, then become ``command``."""
    for name, value in spec.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if spec.get("landlock") is not None:
        ll = spec["landlock"]
        apply_landlock(ll["ro"], ll["rw"], ll["network"])
    if spec.get("seccomp"):
        network = spec.get("network", False)
        install_seccomp(seccomp_program(allow_inet=network, allow_unix_connect=network))
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
        kids = _children(me)
        if not kids:
            return
        for kid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kid, signal.SIGKILL)
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
    says so (SIGTERM) or when swarmchat dies (the parent-death signal)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: a chance to clean up

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
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # dies if the supervisor dies
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


def main(argv: list[str]) -> None:
    """``jail.py SPEC_JSON -- command...``: confine the command and run it."""
    try:
        spec = json.loads(argv[1])
        command = argv[argv.index("--") + 1 :]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with swarmchat
        if os.getppid() != spec.get("parent", os.getppid()):
            os._exit(137)  # the parent is already gone
        if spec.get("cgroup"):
            with open(spec["cgroup"], "w") as f:  # join the run's pids cgroup
                f.write(str(os.getpid()))
        if spec.get("supervise"):
            _supervise(spec, command)
        _confine_and_exec(spec, command)
    except Exception as exc:
        sys.stderr.write(f"swarmchat-jail: {exc}\n")
        os._exit(126)


if __name__ == "__main__":
    main(sys.argv)
