"""Landlock: the fallback tier's file and TCP confinement (and, from ABI 6, signal scoping).

Standard library only: ``jail.py`` applies it with an interpreter that has none of
swarmchat's dependencies.
"""

from __future__ import annotations

import ctypes
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time in jail.py, which imports this module
    from collections.abc import Callable

    Syscall = Callable[..., int]

_FS_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read file, read dir
_FS_FILE = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14)  # rights that apply to a file itself
_FS_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
SIGNAL_SCOPE_ABI = 6  # LANDLOCK_SCOPE_SIGNAL: no signals to processes outside the domain
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same on every arch


def _syscall() -> Syscall:
    fn = ctypes.CDLL(None, use_errno=True).syscall
    fn.restype = ctypes.c_long
    return fn  # type: ignore[no-any-return]


def abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    try:
        version = _syscall()(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def apply(read_only: list[str], read_write: list[str], network: bool) -> int:
    """Restrict this process (and what it execs) to these paths; deny TCP unless network;
    from ABI 6 also refuse signals and abstract Unix sockets leaving the domain.
    Returns the ABI used. Raises OSError when it cannot be enforced (fail closed)."""
    version = abi()
    if version < 1:
        raise OSError("Landlock is not available in this kernel")
    sc = _syscall()
    fs_all = _FS_ALL_BY_ABI.get(version, (1 << 16) - 1)
    net = 0 if network or version < 4 else 0b11  # bind + connect TCP
    scoped = 0b11 if version >= SIGNAL_SCOPE_ABI else 0  # abstract unix sockets, signals
    attr = struct.pack("=QQQ", fs_all, net, scoped)
    size = 8 if version < 4 else (16 if version < SIGNAL_SCOPE_ABI else 24)
    fd = sc(_SYS_CREATE_RULESET, ctypes.c_char_p(attr[:size]), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for paths, access in ((read_only, _FS_READ), (read_write, fs_all)):
            for path in paths:
                _add_path(sc, fd, path, access & fs_all)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(38, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)):
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if sc(_SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(fd)
    return version


def _add_path(sc: Syscall, ruleset: int, path: str, access: int) -> None:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # absent (or unreachable for this uid): simply not allowed
    try:
        allowed = access if os.path.isdir(path) else access & _FS_FILE
        rule = struct.pack("=Qi", allowed, pfd)
        if sc(
            _SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.c_char_p(rule), ctypes.c_uint32(0)
        ):
            raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
    finally:
        os.close(pfd)
