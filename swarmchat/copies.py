"""Where the private copies of the workspace live, and how long.

Making a copy costs a file creation per workspace file: 12-30 ms for a small project on
an ordinary disk, most of the sandbox's budget. So a session keeps its copy after a run
that ended normally and refreshes it for the next run (:meth:`StagedRun.copy_in` keeps
only files that changed on neither side, by ctime, which no process can set back). A
run that did not end normally (error, timeout of the clean-up, Ctrl-C) throws its copy
away. Copies live outside ``/dev/shm``, belong to this process (so the next swarmchat
sweeps those of one that was killed) and are removed when the session ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import stat
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

from swarmchat.sandbox.cleanup import in_shared_memory, passable_by_all, remove_tree
from swarmchat.staging import CopyLimits, StagedRun
from swarmchat.workspace import Workspace

PREFIX = "swarmchat-run-"
KEEP_BYTES = 64 << 20  # a bigger copy is not kept between runs: it may live in memory


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


class CopyPool:
    """A session's copies: one is kept between runs (parallel runs get their own)."""

    def __init__(self, limits: CopyLimits | None = None, keep: bool = True) -> None:
        self.limits = limits
        self.keep = keep
        self._idle: StagedRun | None = None
        _pools.add(self)

    @contextlib.contextmanager
    def staged(
        self, workspace: Workspace, script: str, approved: bytes, owner: tuple[int, int] | None = None
    ) -> Iterator[StagedRun]:
        """A copy for one run, equal to a fresh one; on every way out it is either kept
        (the run ended and was synced back) or removed."""
        run = self._filled(self._take(workspace, owner), workspace, owner, script, approved)
        kept = False
        try:
            if run.owner is not None:  # its uid may pass (not list) to its copy; the base stays ours
                os.chmod(run.base, 0o711)
            yield run
            kept = self.keep and run.synced and run.copied_bytes <= KEEP_BYTES and self._idle is None
        finally:
            if kept:
                with contextlib.suppress(OSError):
                    os.chmod(run.base, 0o700)  # closed to everyone else between runs
                    self._idle = run
            if self._idle is not run:
                remove_tree(run.base)

    def _take(self, workspace: Workspace, owner: tuple[int, int] | None) -> StagedRun | None:
        """The kept copy, if it may serve this run (same directory, rules and owner)."""
        run, self._idle = self._idle, None
        if run is None:
            return None
        mine = owner if owner != (os.getuid(), os.getgid()) else None
        kept_for = (run.workspace.root, run.workspace.policy, run.owner)
        same = kept_for == (workspace.root, workspace.policy, mine)
        try:
            st = os.stat(run.base, follow_symlinks=False)
            found = (stat.S_IFMT(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode))
        except OSError:
            found = None
        intact = found == (stat.S_IFDIR, os.getuid(), 0o700)  # as parked: nobody else's
        if not (same and intact):
            remove_tree(run.base)
            return None
        run.workspace = workspace
        return run

    def _filled(
        self,
        run: StagedRun | None,
        workspace: Workspace,
        owner: tuple[int, int] | None,
        script: str,
        approved: bytes,
    ) -> StagedRun:
        """``run`` refreshed, or a new copy when there is none or the refresh failed (the
        kept copy was cleaned away by the system, say): removed again if that fails too."""
        if run is not None:
            try:
                run.copy_in(script, approved)
                return run
            except OSError:
                remove_tree(run.base)
            except BaseException:
                remove_tree(run.base)
                raise
        run = _new_copy(workspace, owner, self.limits or CopyLimits.from_env())
        try:
            run.copy_in(script, approved)
        except BaseException:
            remove_tree(run.base)
            raise
        return run

    def close(self) -> None:
        run, self._idle = self._idle, None
        if run is not None:
            remove_tree(run.base)


_pools: weakref.WeakSet[CopyPool] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for pool in list(_pools):
        pool.close()


def staged(
    workspace: Workspace,
    script: str,
    approved: bytes,
    owner: tuple[int, int] | None = None,
    limits: CopyLimits | None = None,
) -> contextlib.AbstractContextManager[StagedRun]:
    """A fresh private copy for one run, removed on every way out."""
    return CopyPool(limits, keep=False).staged(workspace, script, approved, owner)


def _new_copy(workspace: Workspace, owner: tuple[int, int] | None, limits: CopyLimits) -> StagedRun:
    bases = scratch_bases(owner)
    sweep_stale(bases)
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=bases[0]))
    return StagedRun(workspace, base, limits, owner)


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
