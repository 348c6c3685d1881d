"""A private copy of the workspace for each run of agent code, and the checked way back.

Agent code never touches the user's directory. Each ``ExecutePyFile`` runs in a fresh
copy (credential files left out, version control and virtual environments too), made
from the exact bytes the user approved for the script itself. When the run is over and
its processes are dead, only *regular files* the run created or changed come back, through
the same safe writer as ``File``: no links, FIFOs or devices, no setuid/setgid bits, no
protected path (``.git``, ``.env``, the swarm file, shell start-up files...), within
caps on count and size. So whatever the code leaves behind, the host only ever gains
ordinary files it could have written with ``File``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from swarmchat.errors import ToolError
from swarmchat.pathpolicy import Verdict, is_skipped_dir
from swarmchat.sandbox.cleanup import in_shared_memory, passable_by_all, remove_tree
from swarmchat.workspace import Workspace, read_upto

PREFIX = "swarmchat-run-"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_DEPTH = 32


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, "")))
    except ValueError:
        return default


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
            in_files=_env_int("SWARMCHAT_COPY_MAX_FILES", cls.in_files),
            in_bytes=_env_int("SWARMCHAT_COPY_MAX_MB", cls.in_bytes >> 20) << 20,
        )


@dataclass
class SyncReport:
    """What came back to the workspace, and what did not (with the reason)."""

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int
    mode: int
    host: tuple[int, int, int, int]  # st_dev, st_ino, size, mtime_ns of the original


class StagedRun:
    """One run's private copy (``root``), made by :func:`staged`."""

    def __init__(self, workspace: Workspace, base: Path, limits: CopyLimits) -> None:
        self.workspace = workspace
        self.base = base
        self.root = base / "ws"
        self.limits = limits
        self.seen: dict[str, _Seen] = {}
        self.dirs = 0
        self.complete = True  # whether sync_back looked at the whole copy

    # --- in -------------------------------------------------------------------------------

    def copy_in(self, script: str, approved: bytes) -> None:
        self.root.mkdir(mode=0o700)
        total = self._copy_dir(self.workspace.root, self.root, "", 0, 0)
        if total > self.limits.in_bytes:
            raise self._too_big()
        target = self.root / script  # the approved bytes run, whatever the disk says now
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(approved)
        st = target.stat()
        host = self.seen[script].host if script in self.seen else (0, 0, -1, 0)
        self.seen[script] = _Seen(st.st_size, st.st_mtime_ns, st.st_mode, host)

    def _copy_dir(self, src: Path, dst: Path, prefix: str, depth: int, total: int) -> int:
        try:
            entries = sorted(os.scandir(src), key=lambda e: e.name)
        except OSError:
            return total
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if depth >= MAX_DEPTH or self._verdict(rel) not in ("ok", "protected"):
                    continue
                if is_skipped_dir(entry.name, os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))):
                    continue
                self.dirs += 1
                if self.dirs > self.limits.in_files:
                    raise self._too_big()
                (dst / entry.name).mkdir(mode=0o755)
                total = self._copy_dir(Path(entry.path), dst / entry.name, rel + "/", depth + 1, total)
            elif entry.is_file(follow_symlinks=False) and self._verdict(rel) in ("ok", "protected"):
                if len(self.seen) >= self.limits.in_files:
                    raise self._too_big()
                total += self._copy_file(entry.path, dst / entry.name, rel)
                if total > self.limits.in_bytes:
                    raise self._too_big()
        return total

    def _copy_file(self, src: str, dst: Path, rel: str) -> int:
        try:
            fd = os.open(src, _FILE)  # O_NONBLOCK: a FIFO planted here must not hang us
        except OSError:
            return 0
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return 0
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
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
                mine = os.fstat(out)
            finally:
                os.close(out)
        finally:
            os.close(fd)
        self.seen[rel] = _Seen(
            mine.st_size, mine.st_mtime_ns, mine.st_mode, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
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

    def chown(self, owner: tuple[int, int]) -> None:
        """Hand the copy to the unprivileged uid the code runs as."""
        uid, gid = owner
        os.chown(self.base, uid, gid)
        for dirpath, dirnames, filenames in os.walk(self.root):
            os.chown(dirpath, uid, gid)
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)

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
            if rel not in present and self.workspace.unchanged(rel, seen.host):
                with contextlib.suppress(ToolError, OSError):
                    self.workspace.remove(rel)
                    report.deleted.append(rel)
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


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scratch_bases(owner: tuple[int, int] | None = None) -> list[str]:
    """Where copies may live, best first: ``SWARMCHAT_RUN_DIR``, the user's runtime
    directory (memory-backed on most desktops), else the temp directory. Never
    ``/dev/shm``: the Landlock tier lets code there (POSIX semaphores need it), so a run of
    another session could reach a copy. When code runs as another uid (``owner``), only
    directories that uid can pass through qualify (``/tmp`` as the last resort)."""
    found = [os.environ.get("SWARMCHAT_RUN_DIR", ""), os.environ.get("XDG_RUNTIME_DIR", "")]
    found.append(tempfile.gettempdir())
    ok = [
        d
        for d in found
        if d and os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK) and not in_shared_memory(d)
    ]
    if owner is not None:
        ok = [d for d in [*ok, "/tmp"] if passable_by_all(d)]
    return list(dict.fromkeys(ok)) or ["/tmp"]


@contextlib.contextmanager
def staged(
    workspace: Workspace,
    script: str,
    approved: bytes,
    owner: tuple[int, int] | None = None,
    limits: CopyLimits | None = None,
) -> Iterator[StagedRun]:
    """A private copy for one run, removed on every way out (errors and cancellation too)."""
    bases = scratch_bases(owner)
    sweep_stale(bases)
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=bases[0]))
    run = StagedRun(workspace, base, limits or CopyLimits.from_env())
    try:
        run.copy_in(script, approved)
        if owner is not None and owner != (os.getuid(), os.getgid()):
            run.chown(owner)
        yield run
    finally:
        remove_tree(base)


_swept: set[str] = set()


def sweep_stale(bases: list[str]) -> None:
    """Remove copies left by swarmchat processes that died (SIGKILL, power loss): once
    per directory and process."""
    for base in bases:
        if base not in _swept:
            _swept.add(base)
            _sweep(base)


def _sweep(base: str) -> None:
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            pid = entry.name[len(PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid == os.getuid():
                        remove_tree(Path(entry.path))
