"""Giving up privileges before agent code runs: another uid, then no capabilities at all.

Started as root, code must not keep root's powers: capabilities let it set the hostname,
open raw sockets, pick real-time scheduling or override file permissions, and a process
that is still uid 0 regains every capability when it execs (unless securebits say
otherwise). So, as root: become an unprivileged uid where the runtime allows it, and in
any case clear every capability set, the bounding set and ambient capabilities, and lock
securebits so that uid 0 means nothing special on exec. Standard library only: ``jail.py``
runs this with an interpreter that has none of swarmchat's dependencies.
"""

from __future__ import annotations

import ctypes
import os

_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_READ, _PR_CAPBSET_DROP = 23, 24
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAP_SETPCAP = 8
# NOROOT, NO_SETUID_FIXUP and NO_CAP_AMBIENT_RAISE, each locked; KEEP_CAPS off and locked.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
_CAPABILITY_VERSION_3 = 0x20080522


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def prctl(option: int, arg: int = 0) -> int:
    return int(
        _libc().prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    )


def die_with_parent(signum: int) -> None:
    """Ask for ``signum`` when the parent dies. Credential changes clear this: call it
    again after :func:`become`."""
    prctl(_PR_SET_PDEATHSIG, signum)


def become(uid: int, gid: int) -> None:
    """Switch real, effective and saved ids to ``uid``/``gid`` with no supplementary
    groups, and check that nothing of the old identity remains."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise OSError(f"could not drop to uid {uid}:{gid}")


def capabilities() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) capability masks of this process."""
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if _libc().capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    return data[0] | data[3] << 32, data[1] | data[4] << 32, data[2] | data[5] << 32


def bounding_set() -> int:
    """How many capabilities remain in the bounding set."""
    count = 0
    for cap in range(64):
        held = prctl(_PR_CAPBSET_READ, cap)
        if held < 0:
            break
        count += held
    return count


def drop_bounding_set() -> None:
    """Empty the bounding set (needs CAP_SETPCAP: do it while still root). A user
    namespace made later starts with a full set of its own, so bubblewrap still works."""
    cap = 0
    while prctl(_PR_CAPBSET_DROP, cap) == 0:  # EINVAL past the kernel's last capability
        cap += 1


def drop_capabilities() -> None:
    """No capability now or after any exec, whatever the uid; raises if one remains."""
    if capabilities()[0] & (1 << _CAP_SETPCAP):  # root: the bits that need CAP_SETPCAP first
        if prctl(_PR_SET_SECUREBITS, _SECUREBITS) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_SECUREBITS")
        drop_bounding_set()
    prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)  # EINVAL before Linux 4.3: none to clear
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    if _libc().capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    if prctl(_PR_SET_NO_NEW_PRIVS, 1) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if any(capabilities()):
        raise OSError("capabilities remain after dropping them")
