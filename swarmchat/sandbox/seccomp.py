"""The seccomp filter every confining tier loads: what agent code may not ask the kernel.

Landlock confines files and TCP, namespaces confine what code can see; neither stops a
process from acting on *other* processes of its uid (prlimit, setpriority, affinity), from
leaving setuid files on the host, or (Landlock tier) from entering a fresh user namespace
where it holds every capability again. The filter refuses those by argument, with EPERM,
so ordinary code sees a plain permission error. Standard library only: ``jail.py`` loads
it with an interpreter that has none of swarmchat's dependencies.

The kernel reads ``pid_t``, ``int`` and ``mode_t`` arguments from the low 32 bits of each
register, so testing the low word of ``seccomp_data.args[i]`` is exact.
"""

from __future__ import annotations

import ctypes
import os
import struct

_NR: dict[str, dict[str, int | None]] = {  # per machine; None: no such syscall there
    "x86_64": dict(
        socket=41,
        ptrace=101,
        add_key=248,
        request_key=249,
        keyctl=250,
        perf_event_open=298,
        bpf=321,
        userfaultfd=323,
        io_uring_setup=425,
        io_uring_enter=426,
        io_uring_register=427,
        ioctl=16,
        fcntl=72,
        connect=42,
        sendto=44,
        open=2,
        creat=85,
        openat=257,
        openat2=437,
        chmod=90,
        fchmod=91,
        fchmodat=268,
        fchmodat2=452,
        mkdir=83,
        mkdirat=258,
        mknod=133,
        mknodat=259,
        prlimit64=302,
        setpriority=141,
        sched_setparam=142,
        sched_setscheduler=144,
        sched_setaffinity=203,
        sched_setattr=314,
        ioprio_set=251,
        migrate_pages=256,
        move_pages=279,
        unshare=272,
        setns=308,
        clone=56,
        clone3=435,
        chown=92,
        fchown=93,
        lchown=94,
        fchownat=260,
        utime=132,
        utimes=235,
        futimesat=261,
        utimensat=280,
        setxattr=188,
        lsetxattr=189,
        fsetxattr=190,
        removexattr=197,
        lremovexattr=198,
        fremovexattr=199,
        setxattrat=463,
        removexattrat=466,
    ),
    "aarch64": dict(
        socket=198,
        ptrace=117,
        add_key=217,
        request_key=218,
        keyctl=219,
        perf_event_open=241,
        bpf=280,
        userfaultfd=282,
        io_uring_setup=425,
        io_uring_enter=426,
        io_uring_register=427,
        ioctl=29,
        fcntl=25,
        connect=203,
        sendto=206,
        open=None,
        creat=None,
        openat=56,
        openat2=437,
        chmod=None,
        fchmod=52,
        fchmodat=53,
        fchmodat2=452,
        mkdir=None,
        mkdirat=34,
        mknod=None,
        mknodat=33,
        prlimit64=261,
        setpriority=140,
        sched_setparam=118,
        sched_setscheduler=119,
        sched_setaffinity=122,
        sched_setattr=274,
        ioprio_set=30,
        migrate_pages=238,
        move_pages=239,
        unshare=97,
        setns=268,
        clone=220,
        clone3=435,
        chown=None,
        fchown=55,
        lchown=None,
        fchownat=54,
        utime=None,
        utimes=None,
        futimesat=None,
        utimensat=88,
        setxattr=5,
        lsetxattr=6,
        fsetxattr=7,
        removexattr=14,
        lremovexattr=15,
        fremovexattr=16,
        setxattrat=463,
        removexattrat=466,
    ),
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# Refused outright. setns/sched_setattr: no use for agent code (the policy of sched_setattr
# hides in a struct the filter cannot read).
_DENIED = (
    "ptrace", "add_key", "request_key", "keyctl", "perf_event_open", "bpf", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "setns", "sched_setattr",
)  # fmt: skip
# Metadata calls Landlock does not confine. In a tier that sees the host's filesystem, code
# could make a readable file of its uid (the interpreter, a file of root's when it runs as
# uid 0) writable by everyone, or change its times and extended attributes. There they
# succeed without doing anything: shutil.copy2 and friends keep working.
_METADATA = (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "removexattr", "lremovexattr", "fremovexattr", "setxattrat", "removexattrat",
)  # fmt: skip
# ENOSYS makes libc fall back to the older call, whose arguments the filter can read.
_UNSUPPORTED = ("openat2", "clone3")

# Mode bits that must never be set (S_ISUID | S_ISGID), with the argument holding the mode.
_SETID = 0o6000
_MODE_ARG = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "mkdir": 1, "mkdirat": 2, "creat": 1}
_OPEN_ARGS = {"open": (1, 2), "openat": (2, 3)}  # (flags, mode)
# mknod makes FIFOs only (multiprocessing and shells use them): no device node, and no
# regular file, which would be a way round the mode checks above.
_MKNOD_ARG = {"mknod": 1, "mknodat": 2}
_S_IFMT, _S_IFIFO = 0o170000, 0o010000
_O_CREATES = 0o100 | 0o20000000  # O_CREAT | __O_TMPFILE
# Calls that act on another process when their pid argument is not 0 (this process).
_SELF_ONLY = ("prlimit64", "sched_setaffinity", "sched_setparam", "migrate_pages", "move_pages")
_CLONE_NEW = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NEWTIME = 0x80  # only for unshare: in clone() these bits are the exit signal
_SCHED_OK = (0, 3, 5)  # SCHED_OTHER, SCHED_BATCH, SCHED_IDLE: never FIFO, RR or DEADLINE
_SCHED_RESET_ON_FORK = 0x40000000

_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _AND_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x54, 0x06
_ALLOW, _KILL, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_EPERM, _EACCES, _EAFNOSUPPORT, _ENOSYS = _ERRNO | 1, _ERRNO | 13, _ERRNO | 97, _ERRNO | 38
_DONE = _ERRNO | 0  # "succeeded", without running the call
# ioctls that change a file (Landlock confines ioctl on devices only): inode flags
# (chattr), the inode generation, fsxattr, verity, encryption, ext4 migration. And
# fcntl(F_SETLEASE), which would stall the host's writers of any file code can read.
_FILE_IOCTLS = (
    0x40086602, 0x40046602,  # FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS
    0x40087602, 0x40047602, 0x40086604, 0x40046604,  # FS_IOC(32)_SETVERSION, EXT4_IOC(32)_SETVERSION
    0x401C5820,  # FS_IOC_FSSETXATTR
    0x40806685,  # FS_IOC_ENABLE_VERITY
    0x800C6613,  # FS_IOC_SET_ENCRYPTION_POLICY
    0x6609,  # EXT4_IOC_MIGRATE
)  # fmt: skip
_F_SETLEASE = 1024
_AF_UNIX = 1
_TIOCSTI = 0x5412

Ins = tuple[int, int | str, int | str, int]  # code, jump-if-true, jump-if-false, k


def supported() -> bool:
    return os.uname().machine in _NR


def _arg(i: int) -> int:
    return 16 + 8 * i  # offset of the low word of seccomp_data.args[i] (little-endian)


class _Asm:
    """Classic BPF with named jump targets. Each rule starts and ends with the syscall
    number in the accumulator, so rules can follow one another in any order."""

    def __init__(self) -> None:
        self.items: list[Ins | str] = []
        self.count = 0

    def label(self) -> str:
        self.count += 1
        return f"L{self.count}"

    def add(self, *items: Ins | str) -> None:
        self.items.extend(items)

    def deny(self, nr: int | None, ret: int = _EPERM) -> None:
        if nr is not None:
            self.add((_JEQ_K, 0, 1, nr), (_RET_K, 0, 0, ret))

    def rule(self, nr: int | None, body: list[Ins | str]) -> None:
        """``body`` runs only for syscall ``nr``; the syscall number is reloaded after it."""
        if nr is None:
            return
        end = self.label()
        self.add((_JEQ_K, 0, end, nr), *body, (_LD_W_ABS, 0, 0, 0), end)

    def program(self) -> bytes:
        where: dict[str, int] = {}
        pos = 0
        for item in self.items:
            if isinstance(item, str):
                where[item] = pos
            else:
                pos += 1
        out, pos = [], 0
        for item in self.items:
            if isinstance(item, str):
                continue
            code, jt, jf, k = item
            rel = [t if isinstance(t, int) else where[t] - pos - 1 for t in (jt, jf)]
            assert all(0 <= r < 256 for r in rel), "jump out of range"
            out.append(struct.pack("=HBBI", code, rel[0], rel[1], k))
            pos += 1
        return b"".join(out)


def _deny_if_set(a: _Asm, arg: int, mask: int) -> list[Ins | str]:
    ok = a.label()
    return [(_LD_W_ABS, 0, 0, _arg(arg)), (_JSET_K, 0, ok, mask), (_RET_K, 0, 0, _EPERM), ok]


def _deny_unless(a: _Asm, pairs: list[tuple[int, int]]) -> list[Ins | str]:
    """Refuse the call unless ``args[i] == value`` for every ``(i, value)``."""
    deny, ok = a.label(), a.label()
    body: list[Ins | str] = []
    for n, (arg, value) in enumerate(pairs):
        body += [(_LD_W_ABS, 0, 0, _arg(arg)), (_JEQ_K, ok if n == len(pairs) - 1 else 0, deny, value)]
    return [*body, deny, (_RET_K, 0, 0, _EPERM), ok]


_built: dict[tuple[bool, bool, bool], bytes] = {}


def program(allow_inet: bool, allow_unix_connect: bool = True, allow_metadata: bool = True) -> bytes:
    """The filter as raw ``struct sock_filter`` bytes (bubblewrap's ``--seccomp FD`` format).

    ``allow_unix_connect=False`` is for tiers that can see the host's filesystem (Landlock):
    there a Unix socket path could reach a host service, so ``connect`` is refused and
    ``sendto`` may not name an address. ``allow_metadata=False``, for the same tiers:
    chmod, chown, utime and xattr calls do nothing.
    """
    key = (allow_inet, allow_unix_connect, allow_metadata)
    if key not in _built:
        _built[key] = _build(*key)
    return _built[key]


def _build(allow_inet: bool, allow_unix_connect: bool, allow_metadata: bool) -> bytes:
    machine = os.uname().machine
    nr = _NR[machine]
    a = _Asm()
    a.add(
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch: other ABIs (i386 via int 0x80) die
        (_JEQ_K, 1, 0, _AUDIT_ARCH[machine]),
        (_RET_K, 0, 0, _KILL),
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (_JGE_K, 0, 1, 0x40000000),  # x32 syscall numbers would dodge every rule below
        (_RET_K, 0, 0, _KILL),
    )
    for name in _DENIED:
        a.deny(nr[name])
    for name in _UNSUPPORTED:
        a.deny(nr[name], _ENOSYS)
    for name in () if allow_metadata else _METADATA:
        a.deny(nr[name], _DONE)
    if not allow_metadata:
        deny, ok = a.label(), a.label()
        a.rule(
            nr["ioctl"],
            [
                (_LD_W_ABS, 0, 0, _arg(1)),
                *[(_JEQ_K, deny, 0, cmd) for cmd in _FILE_IOCTLS],
                (_JEQ_K, ok, ok, 0),  # always to ok
                deny,
                (_RET_K, 0, 0, _EPERM),
                ok,
            ],
        )
        lease_ok = a.label()
        a.rule(
            nr["fcntl"],
            [
                (_LD_W_ABS, 0, 0, _arg(1)),
                (_JEQ_K, 0, lease_ok, _F_SETLEASE),
                (_RET_K, 0, 0, _EPERM),
                lease_ok,
            ],
        )
    # No setuid/setgid file may be made: a root-owned one left in the workspace is a host
    # escalation, whatever uid the code ran as.
    for name, arg in _MODE_ARG.items():
        a.rule(nr[name], _deny_if_set(a, arg, _SETID))
    for name, (flags, mode) in _OPEN_ARGS.items():
        plain = a.label()
        a.rule(
            nr[name],
            [
                (_LD_W_ABS, 0, 0, _arg(flags)),
                (_JSET_K, 0, plain, _O_CREATES),
                *_deny_if_set(a, mode, _SETID),
                plain,
            ],
        )
    for name, arg in _MKNOD_ARG.items():
        fifo = a.label()
        a.rule(
            nr[name],
            [
                (_LD_W_ABS, 0, 0, _arg(arg)),
                (_AND_K, 0, 0, _S_IFMT | _SETID),
                (_JEQ_K, fifo, 0, _S_IFIFO),
                (_RET_K, 0, 0, _EPERM),
                fifo,
            ],
        )
    # Other processes' limits, priority, affinity and memory are not the code's business.
    for name in _SELF_ONLY:
        a.rule(nr[name], _deny_unless(a, [(0, 0)]))
    a.rule(nr["setpriority"], _deny_unless(a, [(0, 0), (1, 0)]))  # PRIO_PROCESS, this process
    a.rule(nr["ioprio_set"], _deny_unless(a, [(0, 1), (1, 0)]))  # IOPRIO_WHO_PROCESS, this one
    sched_ok = a.label()
    a.rule(
        nr["sched_setscheduler"],
        [
            *_deny_unless(a, [(0, 0)]),
            (_LD_W_ABS, 0, 0, _arg(1)),
            (_AND_K, 0, 0, 0xFFFFFFFF & ~_SCHED_RESET_ON_FORK),
            *[(_JEQ_K, sched_ok, 0, policy) for policy in _SCHED_OK],
            (_RET_K, 0, 0, _EPERM),
            sched_ok,
        ],
    )
    # No new namespaces: a fresh user namespace hands back every capability inside it.
    a.rule(nr["unshare"], _deny_if_set(a, 0, _CLONE_NEW | _CLONE_NEWTIME))
    a.rule(nr["clone"], _deny_if_set(a, 0, _CLONE_NEW))
    tty_ok = a.label()  # ioctl(fd, TIOCSTI): no typing into a terminal
    a.rule(
        nr["ioctl"],
        [(_LD_W_ABS, 0, 0, _arg(1)), (_JEQ_K, 0, tty_ok, _TIOCSTI), (_RET_K, 0, 0, _EPERM), tty_ok],
    )
    if not allow_inet:  # socket(domain != AF_UNIX) fails: no TCP, UDP, raw, netlink, packet
        unix = a.label()
        a.rule(
            nr["socket"],
            [(_LD_W_ABS, 0, 0, _arg(0)), (_JEQ_K, unix, 0, _AF_UNIX), (_RET_K, 0, 0, _EAFNOSUPPORT), unix],
        )
    if not allow_unix_connect:
        a.deny(nr["connect"], _EACCES)
        unnamed = a.label()
        a.rule(
            nr["sendto"],
            [
                (_LD_W_ABS, 0, 0, _arg(4)),  # dest_addr, both words: NULL may be sent
                (_JEQ_K, 0, 2, 0),
                (_LD_W_ABS, 0, 0, _arg(4) + 4),
                (_JEQ_K, unnamed, 0, 0),
                (_RET_K, 0, 0, _EACCES),
                unnamed,
            ],
        )
    a.add((_RET_K, 0, 0, _ALLOW))
    return a.program()


def install(filter_program: bytes) -> None:
    """Load the filter into this process (and everything it execs), after no_new_privs."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(filter_program, len(filter_program))
    fprog = struct.pack("@HP", len(filter_program) // 8, ctypes.addressof(buf))  # sock_fprog
    if libc.prctl(38, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    mode = ctypes.c_ulong(2)  # SECCOMP_MODE_FILTER
    if libc.prctl(22, mode, ctypes.c_void_p(ctypes.addressof(fbuf)), ctypes.c_ulong(0), ctypes.c_ulong(0)):
        raise OSError(ctypes.get_errno(), "seccomp filter")
