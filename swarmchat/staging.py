"""A private copy of the workspace for each run of agent code, and the checked way back.

Agent code never touches the user's directory. Each ``ExecutePyFile`` runs in a copy
equal to a fresh one (credential files left out, version control and virtual environments
too), with the exact bytes the user approved as the script itself. When the run is over and
its processes are dead, only *regular files* the run created or changed come back, through
the same safe writer as ``File``: no links, FIFOs or devices, no setuid/setgid bits, no
protected path (``.git``, ``.env``, the swarm file, shell start-up files...), within
caps on count and size. So whatever the code leaves behind, the host only ever gains
ordinary files it could have written with ``File``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from swarmchat.environment import positive_int
from swarmchat.errors import ToolError
from swarmchat.pathpolicy import Verdict, is_skipped_dir
from swarmchat.sandbox.cleanup import remove_at
from swarmchat.workspace import Workspace, read_upto

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FS_IOC_GETFLAGS = 0x80086601
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 32


@dataclass(frozen=True)
class CopyLimits:
    """How much of the workspace is copied in, and how much may come back."""

    in_files: int = 5000
    in_bytes: int = 128 << 20
    out_files: int = 2000
    out_bytes: int = 256 << 20
    out_entries: int = 20000  # files and directories looked at on the way back

    @classmethod
    def from_env(cls) -> CopyLimits:
        return cls(
            in_files=positive_int("SWARMCHAT_COPY_MAX_FILES", cls.in_files),
            in_bytes=positive_int("SWARMCHAT_COPY_MAX_MB", cls.in_bytes >> 20) << 20,
        )


@dataclass
class SyncReport:
    """What came back to the workspace, and what did not (with the reason)."""

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Seen:
    """A file of the copy as the copy-in left it, and the workspace file it came from."""

    size: int
    mtime_ns: int
    mode: int
    host: tuple[int, int, int, int]  # st_dev, st_ino, size, mtime_ns of the original
    copy: tuple[int, int, int] = (0, 0, -1)  # st_ino, st_ctime_ns, st_uid of the copy's file
    host_ctime_ns: int = -1


class StagedRun:
    """One private copy (``root``): filled from the workspace, run on, synced back, and
    possibly refreshed for a later run of the same session (see :mod:`swarmchat.copies`)."""

    def __init__(
        self, workspace: Workspace, base: Path, limits: CopyLimits, owner: tuple[int, int] | None = None
    ) -> None:
        self.workspace = workspace
        self.base = base
        self.root = base / "ws"
        self.limits = limits
        self.owner = owner if owner != (os.getuid(), os.getgid()) else None
        self.seen: dict[str, _Seen] = {}
        self.dirs: dict[str, tuple[int, int, int]] = {}  # rel -> st_ino, st_mode, inode flags
        self.stale: set[str] = set()  # the approved script: its bytes may differ from the disk
        self.copied_bytes = 0
        self.complete = True  # whether sync_back looked at the whole copy
        self.synced = False  # sync_back ran, so every process of the run was dead by then
        self._keep: dict[str, _Seen] = {}
        self._old_dirs: dict[str, tuple[int, int, int]] = {}

    # --- in -------------------------------------------------------------------------------

    def copy_in(self, script: str, approved: bytes) -> None:
        """Make the copy equal a fresh copy of the workspace, with the approved bytes as
        ``script``. A copy that already ran code keeps only files that provably changed on
        neither side: the workspace file has the same identity and ctime, the copy's file
        the same inode, ctime and owner (a process cannot set a ctime back). Everything
        else in it is removed or copied again. All of it through directory descriptors
        opened without following links: a directory swapped for a symlink is never entered."""
        self._keep = {rel: s for rel, s in self.seen.items() if rel not in self.stale}
        self._old_dirs = self.dirs
        self.seen, self.dirs, self.stale = {}, {}, set()
        self.synced, self.complete = False, True
        base = os.open(self.base, _DIR)
        try:
            root = self._enter(base, "ws", "")
            try:
                self.copied_bytes = self._copy_dir(self.workspace.root, root, "", 0, 0)
                if self.copied_bytes > self.limits.in_bytes:
                    raise self._too_big()
                self._write_script(root, script, approved)
            finally:
                os.close(root)
        finally:
            os.close(base)
            self._keep, self._old_dirs = {}, {}

    def _copy_dir(self, src: Path, dfd: int, prefix: str, depth: int, total: int) -> int:
        try:
            entries = sorted(os.scandir(src), key=lambda e: e.name)
        except OSError:
            entries = []
        present = {e.name: e for e in os.scandir(dfd)}  # what a run before this one left
        wanted: set[str] = set()
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if depth >= MAX_DEPTH or self._verdict(rel) not in ("ok", "protected"):
                    continue
                if is_skipped_dir(entry.name, os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))):
                    continue
                if len(self.dirs) > self.limits.in_files:
                    raise self._too_big()
                wanted.add(entry.name)
                sub = self._enter(dfd, entry.name, rel)
                try:
                    total = self._copy_dir(Path(entry.path), sub, rel + "/", depth + 1, total)
                finally:
                    os.close(sub)
            elif entry.is_file(follow_symlinks=False) and self._verdict(rel) in ("ok", "protected"):
                if len(self.seen) >= self.limits.in_files:
                    raise self._too_big()
                wanted.add(entry.name)
                before = self._keep.get(rel)
                if before is not None and _unchanged(present.get(entry.name), entry, before):
                    self.seen[rel] = before
                    total += before.size
                else:
                    remove_at(dfd, entry.name)
                    total += self._copy_file(entry.path, dfd, entry.name, rel)
                if total > self.limits.in_bytes:
                    raise self._too_big()
        for name in present:
            if name not in wanted:
                remove_at(dfd, name)
        if not set(os.listdir(dfd)) <= wanted:  # the next run must not find it: start over
            raise OSError(errno.ENOTEMPTY, f"could not clear {prefix or './'} in the copy")
        return total

    def _enter(self, dfd: int, name: str, rel: str) -> int:
        """The copy's directory ``name``, opened: the one this copy made, if it is still
        that directory in kind, mode, owner, inode flags and extended attributes (a
        default ACL there would shape the files copied in next); else a new one."""
        before = self._old_dirs.get(rel)
        if before is not None and (fd := self._same_dir(dfd, name, before)) >= 0:
            self.dirs[rel] = before
            return fd
        remove_at(dfd, name)
        os.mkdir(name, 0o700 if rel == "" else 0o755, dir_fd=dfd)
        fd = os.open(name, _DIR, dir_fd=dfd)
        try:
            st = self._own(fd)
        except OSError:
            os.close(fd)
            raise
        self.dirs[rel] = (st.st_ino, st.st_mode, _flags(fd))
        return fd

    def _same_dir(self, dfd: int, name: str, before: tuple[int, int, int]) -> int:
        """``name`` opened, if it is still the directory recorded as ``before``; else -1."""
        try:
            fd = os.open(name, _DIR, dir_fd=dfd)
        except OSError:
            return -1
        try:
            st = os.fstat(fd)
            same = (st.st_ino, st.st_mode, _flags(fd), st.st_uid) == (*before, self._uid)
            if same and not os.listxattr(fd):  # a default ACL would shape what is copied in
                return fd
        except OSError:
            pass
        os.close(fd)
        return -1

    def _write_script(self, root: int, script: str, approved: bytes) -> None:
        """The approved bytes run, whatever the disk says now. Its directories are made
        when the copy left them out (a skipped directory)."""
        *parts, name = script.split("/")
        dfd = os.dup(root)
        try:
            for i, part in enumerate(parts):
                sub = self._enter(dfd, part, "/".join(parts[: i + 1]))
                os.close(dfd)
                dfd = sub
            remove_at(dfd, name)
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
            )
        finally:
            os.close(dfd)
        try:
            view = memoryview(approved)
            while view:
                view = view[os.write(fd, view) :]
            st = self._own(fd)
        finally:
            os.close(fd)
        host = self.seen[script].host if script in self.seen else (0, 0, -1, 0)
        self.seen[script] = _Seen(st.st_size, st.st_mtime_ns, st.st_mode, host)
        self.stale = {script}

    @property
    def _uid(self) -> int:
        return self.owner[0] if self.owner is not None else os.getuid()

    def _own(self, fd: int) -> os.stat_result:
        if self.owner is not None:
            os.fchown(fd, *self.owner)
        return os.fstat(fd)

    def _copy_file(self, src: str, dfd: int, name: str, rel: str) -> int:
        try:
            fd = os.open(src, _FILE)  # O_NONBLOCK: a FIFO planted here must not hang us
        except OSError:
            return 0
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return 0
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            out = os.open(name, _NEW, mode, dir_fd=dfd)
            try:
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                copied = 0
                while copied < st.st_size:
                    n = os.sendfile(out, fd, copied, min(st.st_size - copied, 1 << 24))
                    if n == 0:
                        break
                    copied += n
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
                mine = self._own(out)
            finally:
                os.close(out)
        finally:
            os.close(fd)
        self.seen[rel] = _Seen(
            mine.st_size,
            mine.st_mtime_ns,
            mine.st_mode,
            (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
            (mine.st_ino, mine.st_ctime_ns, mine.st_uid),
            st.st_ctime_ns,
        )
        return st.st_size

    def _verdict(self, rel: str) -> Verdict | Literal["invalid"]:
        """The path policy's verdict; names no tool could use (a newline...) are invalid."""
        try:
            return self.workspace.verdict(rel)
        except ToolError:
            return "invalid"

    def _too_big(self) -> ToolError:
        lim = self.limits
        return ToolError(
            f"the workspace is too big to run code in (more than {lim.in_files} files and "
            f"directories, or {lim.in_bytes >> 20} MiB): each run works on a private copy of "
            "it (not counting .git, virtual environments, node_modules and caches). Tell the "
            "user: start swarmchat in a smaller directory (-w DIR), or raise "
            "SWARMCHAT_COPY_MAX_FILES / SWARMCHAT_COPY_MAX_MB."
        )

    # --- out ------------------------------------------------------------------------------

    def sync_back(self) -> SyncReport:
        """Bring the run's regular files home; call only once every process of it is dead."""
        report = SyncReport()
        present: set[str] = set()
        budget = [self.limits.out_files, self.limits.out_bytes, self.limits.out_entries]
        try:
            fd = os.open(self.root, _DIR)
        except OSError:
            return report
        self.complete = True  # a part not looked at must not read as deleted
        self._sync_dir(fd, "", 0, present, report, budget)
        for rel, seen in self.seen.items() if self.complete else ():
            if rel in present:
                continue
            if self.workspace.unchanged(rel, seen.host):
                try:
                    self.workspace.remove(rel)
                    report.deleted.append(rel)
                except ToolError as exc:
                    report.refused.append((rel, f"deleted by the run, but kept: {exc.message}"))
                except OSError as exc:
                    report.refused.append((rel, f"deleted by the run, but kept: {exc.strerror}"))
            elif os.path.lexists(self.workspace.root / rel):
                report.refused.append((rel, "deleted by the run, but changed in the workspace since; kept"))
        self.synced = True
        return report

    def _sync_dir(
        self, dfd: int, prefix: str, depth: int, present: set[str], report: SyncReport, budget: list[int]
    ) -> None:
        try:
            try:
                names = sorted(os.listdir(dfd))
            except OSError:
                self.complete = False
                return
            for name in names:
                rel = prefix + name
                budget[2] -= 1
                if budget[2] < 0:
                    self.complete = False
                    if budget[2] == -1:
                        report.refused.append((prefix or ".", "too many entries; the rest was not looked at"))
                    return
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if depth >= MAX_DEPTH:
                        report.refused.append((rel + "/", f"nested deeper than {MAX_DEPTH} directories"))
                        continue
                    try:
                        sub = os.open(name, _DIR, dir_fd=dfd)
                    except OSError:
                        self.complete = False
                        continue
                    self._sync_dir(sub, rel + "/", depth + 1, present, report, budget)
                elif stat.S_ISREG(st.st_mode):
                    present.add(rel)
                    self._sync_file(dfd, name, rel, st, report, budget)
                else:
                    present.add(rel)  # not a regular file: never copied, never deletes the original
                    kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                    report.refused.append((rel, f"{kind}; only regular files are kept"))
        finally:
            os.close(dfd)

    def _sync_file(
        self, dfd: int, name: str, rel: str, st: os.stat_result, report: SyncReport, budget: list[int]
    ) -> None:
        before = self.seen.get(rel)
        if before and (before.size, before.mtime_ns, before.mode) == (st.st_size, st.st_mtime_ns, st.st_mode):
            return
        if not _utf8(rel):
            report.refused.append((ascii(rel), "the name is not valid UTF-8"))
            return
        if before and before.host[2] >= 0 and not self.workspace.unchanged(rel, before.host):
            report.refused.append((rel, "changed in the workspace during the run; that version was kept"))
            return
        verdict = self._verdict(rel)
        if verdict == "invalid":
            report.refused.append((rel, "not a valid file name"))
            return
        if verdict != "ok":
            why = "holds credentials" if verdict == "hidden" else "is protected (the host runs it later)"
            report.refused.append((rel, f"{why}; agents may not change it"))
            return
        if budget[0] <= 0 or budget[1] < st.st_size:
            lim = self.limits
            why = f"over the {lim.out_files} files / {lim.out_bytes >> 20} MiB a run may leave"
            why += "; write fewer, larger files"
            report.refused.append((rel, why))
            return
        try:
            fd = os.open(name, _FILE, dir_fd=dfd)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return
                data = read_upto(fd, budget[1] + 1)
                if len(data) > budget[1]:
                    raise ToolError("larger than the bytes a run may leave")
            finally:
                os.close(fd)
            self.workspace.write(rel, data, mode=0o755 if st.st_mode & 0o111 else 0o644)
        except (ToolError, OSError) as exc:
            report.refused.append((rel, str(exc) if isinstance(exc, ToolError) else exc.strerror or "error"))
            return
        budget[0] -= 1
        budget[1] -= len(data)
        report.written.append(rel)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            report.refused.append((rel, "setuid/setgid bits were dropped"))


def _flags(fd: int) -> int:
    """The inode flags (``chattr``: sync, noatime, casefold...) of an open file, or -1."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4], "little")
    except OSError:
        return -1


def _unchanged(copy: os.DirEntry[str] | None, host: os.DirEntry[str], before: _Seen) -> bool:
    """Whether both the copy's file and the workspace's are still exactly as copied."""
    if copy is None:
        return False
    try:
        mine = copy.stat(follow_symlinks=False)
        theirs = host.stat(follow_symlinks=False)
    except OSError:
        return False
    return (
        stat.S_ISREG(mine.st_mode)
        and mine.st_nlink == 1
        and (mine.st_ino, mine.st_ctime_ns, mine.st_uid) == before.copy
        and (mine.st_size, mine.st_mtime_ns, mine.st_mode) == (before.size, before.mtime_ns, before.mode)
        and (theirs.st_dev, theirs.st_ino, theirs.st_size, theirs.st_mtime_ns) == before.host
        and theirs.st_ctime_ns == before.host_ctime_ns
    )


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
