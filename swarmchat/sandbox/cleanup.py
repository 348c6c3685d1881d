"""Run-private directories: where they may live, and removing them safely.

Where: never in ``/dev/shm`` (Landlock-tier code of any run can write there), and, for
code running as another uid, only where that uid can pass.


The code may still be racing us (a parallel run sharing the uid), may have left read-only
directories, and may swap a directory for a symlink to a host directory mid-removal. So
the walk holds directory descriptors opened with ``O_NOFOLLOW``, unlinks entries relative
to them, changes permissions only through a descriptor it holds, and never resolves a
path by name: a symlink is unlinked, never followed. Iterative, so a deep tree cannot
exhaust the stack. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_ENTRIES = 2_000_000  # a bound on the walk, far above what a run can create in its time
MAX_HELD = 64  # directory descriptors held open at once while emptying a tree


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` and everything below it; a symlink at ``path`` is only unlinked."""
    parent, name = os.path.split(os.path.normpath(os.fspath(path)))
    if name in ("", ".", ".."):
        raise ValueError(f"not a tree to remove: {os.fspath(path)!r}")
    try:
        dfd = os.open(parent or ".", _DIR & ~os.O_NOFOLLOW)  # the caller's own directory
    except OSError:
        return
    try:
        remove_at(dfd, name)
    finally:
        os.close(dfd)


def remove_at(dfd: int, name: str) -> None:
    """Remove the entry ``name`` of the directory open as ``dfd``, whatever it is (a tree
    is emptied first); nothing is followed and a missing entry is fine."""
    try:
        os.unlink(name, dir_fd=dfd)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass  # a directory
    try:
        sub = _open_dir(dfd, name)
    except OSError:
        return
    try:
        _empty(sub)
    finally:
        os.close(sub)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=dfd)


def _open_dir(dfd: int, name: str) -> int:
    """The directory ``name``, opened without following a link. One the code made
    unreadable (mode 0 or 0300: enough against a process of the same uid) is made ours
    again first, through an ``O_PATH`` descriptor of that very inode."""
    try:
        return os.open(name, _DIR, dir_fd=dfd)
    except PermissionError:
        return _make_ours(dfd, name, reopen=True)


def _make_ours(dfd: int, name: str, reopen: bool = False) -> int:
    """chmod 0700 the directory ``name`` through an ``O_PATH`` descriptor (no read or
    search permission needed, and never a link); optionally open it for reading."""
    pinned = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        os.chmod(f"/proc/self/fd/{pinned}", 0o700)
        if reopen:
            return os.open(f"/proc/self/fd/{pinned}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return -1
    finally:
        os.close(pinned)


def _empty(top: int) -> None:
    """Empty the directory open as ``top`` (the descriptor stays the caller's). At most
    ``MAX_HELD`` directories are held open: a subtree deeper than that is moved up under
    ``top`` and emptied from there, so depth cannot exhaust the descriptor limit."""
    # Each frame: a directory's descriptor, its entries still to look at, and its name in
    # the frame below (None for ``top``).
    stack: list[tuple[int, list[str], str | None]] = [(top, _names(top), None)]
    budget = MAX_ENTRIES
    try:
        while stack and budget > 0:
            fd, names, own = stack[-1]
            if not names:
                stack.pop()
                if own is not None:
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        os.rmdir(own, dir_fd=stack[-1][0])  # a symlink there: ENOTDIR
                continue
            name = names.pop()
            budget -= 1
            try:
                os.unlink(name, dir_fd=fd)  # files, symlinks, FIFOs: never followed
                continue
            except (IsADirectoryError, PermissionError):
                pass  # a directory (Linux says EISDIR; others EPERM): emptied below
            except OSError:
                continue
            if len(stack) >= MAX_HELD:
                up = _move_up(fd, name, top)
                if up:
                    stack[0][1].append(up)
                continue
            try:
                sub = _open_dir(fd, name)
            except OSError:
                continue  # swapped for a symlink, or gone: nothing to follow
            stack.append((sub, _names(sub), name))
    finally:
        for fd, _, own in stack:
            if own is not None:
                os.close(fd)


def _move_up(dfd: int, name: str, top: int) -> str:
    """Move directory ``name`` of ``dfd`` into ``top`` under a fresh random name (code
    cannot have planted it), and return that name; ``""`` if it could not be moved.
    Changing a directory's parent needs write access to the directory itself."""
    for _ in range(3):
        new = f".swarmchat-deep-{secrets.token_hex(8)}"
        try:
            try:
                os.rename(name, new, src_dir_fd=dfd, dst_dir_fd=top)
            except PermissionError:
                _make_ours(dfd, name)
                os.rename(name, new, src_dir_fd=dfd, dst_dir_fd=top)
            return new
        except OSError:
            continue
    return ""


def _names(fd: int) -> list[str]:
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o700)  # through the descriptor: a read-only directory left by the code
    try:
        return os.listdir(fd)
    except OSError:
        return []


def in_shared_memory(path: str) -> bool:
    """``/dev/shm`` (or below): shared with Landlock-tier code, so never for private dirs."""
    real = os.path.realpath(path)
    return real == "/dev/shm" or real.startswith(("/dev/shm/", "/run/shm"))


def passable_by_all(path: str) -> bool:
    """Every directory from ``/`` to ``path`` lets other users through (o+x)."""
    current = os.path.realpath(path)
    while True:
        try:
            if not os.stat(current).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if current == "/":
            return True
        current = os.path.dirname(current)
