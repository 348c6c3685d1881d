"""A bound on what one run writes to the host's disks: bytes and files (inodes).

The run's copy of the workspace (and, in the Landlock tier, its private ``/tmp``) lives on
a host filesystem, where a run could create hundreds of thousands of files in seconds
or fill the disk before its timeout. No kernel quota is available to an ordinary user,
so the supervisor watches the free space and free inodes of those filesystems while the
run goes on (one ``statvfs`` per filesystem every 100 ms). Other programs write there
too: past the limit, the run's own directories are counted before it is stopped, and
what they hold becomes the new baseline. A run is stopped regardless when the
filesystem loses four times the limit while it goes on (files deleted but held open
are not in any directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarmchat.environment import positive_int

POLL_SECONDS = 0.1
HARD_FACTOR = 4


@dataclass(frozen=True)
class WriteLimits:
    """What one run may add to the disks it writes to."""

    bytes: int = 1 << 30
    files: int = 100_000

    @classmethod
    def from_env(cls) -> WriteLimits:
        return cls(
            bytes=positive_int("SWARMCHAT_RUN_MAX_MB", cls.bytes >> 20) << 20,
            files=positive_int("SWARMCHAT_RUN_MAX_FILES", cls.files),
        )


@dataclass
class _Disk:
    """One filesystem: where the run writes on it, and its free blocks/inodes before."""

    dirs: list[str]
    frsize: int
    counts_inodes: bool
    start: tuple[int, int]  # free blocks, free inodes when the run started
    base: tuple[int, int]  # the same, moved by what the run's directories were found to hold


class DiskGuard:
    """Watches the filesystems holding ``dirs`` while a run goes on. ``shared``: a
    directory others write to as well (``/dev/shm``) and the uid the run's code has:
    there only that uid's entries made or changed since the start count as the run's."""

    def __init__(
        self,
        dirs: list[Path | str],
        limits: WriteLimits | None = None,
        shared: tuple[str, int] | None = None,
    ) -> None:
        self.limits = limits or WriteLimits.from_env()
        self.reason = ""  # why the run was stopped
        self._disks: dict[int, _Disk] = {}
        self._shared = shared
        self._started_ns = time.time_ns()
        for d in [*dirs, *([shared[0]] if shared else [])]:
            with contextlib.suppress(OSError):
                dev = os.stat(d).st_dev
                if dev in self._disks:
                    self._disks[dev].dirs.append(str(d))
                    continue
                vfs = os.statvfs(d)
                free = (vfs.f_bfree, vfs.f_ffree)
                self._disks[dev] = _Disk([str(d)], vfs.f_frsize, vfs.f_files > 0, free, free)

    def _used(self, disk: _Disk, since: tuple[int, int]) -> tuple[int, int]:
        try:
            vfs = os.statvfs(disk.dirs[0])
        except OSError:
            return 0, 0
        files = since[1] - vfs.f_ffree if disk.counts_inodes else 0
        return (since[0] - vfs.f_bfree) * disk.frsize, files

    def _over(self) -> bool:
        """Whether the filesystems say the limit may have been passed (cheap: statvfs)."""
        lim = self.limits
        for disk in self._disks.values():
            total_bytes, total_files = self._used(disk, disk.start)
            if total_bytes > HARD_FACTOR * lim.bytes or total_files > HARD_FACTOR * lim.files:
                self.reason = (
                    f"the disk it writes to lost more than {HARD_FACTOR * lim.bytes >> 20} MiB or "
                    f"{HARD_FACTOR * lim.files} files while it ran"
                )
                return False
            used_bytes, used_files = self._used(disk, disk.base)
            if used_bytes > lim.bytes or used_files > lim.files:
                return True
        return False

    def _count(self) -> str:
        """Why the run must stop, after counting what its directories hold; or ``""``, and
        the rest was written by others."""
        lim = self.limits
        counted = [(disk, self._tally(disk.dirs, lim.files + 1)) for disk in self._disks.values()]
        files = sum(n for _, (_, n) in counted)
        size = sum(b for _, (b, _) in counted)
        if files > lim.files:
            return f"it created more than {lim.files} files (SWARMCHAT_RUN_MAX_FILES)"
        if size > lim.bytes:
            return f"it wrote more than {lim.bytes >> 20} MiB (SWARMCHAT_RUN_MAX_MB)"
        for disk, (held, n) in counted:  # others wrote the rest: count from here
            with contextlib.suppress(OSError):
                vfs = os.statvfs(disk.dirs[0])
                disk.base = (vfs.f_bfree + held // disk.frsize, vfs.f_ffree + n)
        return ""

    async def watch(self, stop_run: Callable[[], None]) -> None:
        """Poll until the run is over its limits (``reason`` says how), then stop it; the
        supervisor cancels this when the run ends."""
        while self._disks and not self.reason:
            await asyncio.sleep(POLL_SECONDS)
            if self._over():
                self.reason = await asyncio.to_thread(self._count)
        if self.reason:
            stop_run()

    def _tally(self, dirs: list[str], budget: int) -> tuple[int, int]:
        """Bytes (allocated, directories' own too) and entries under ``dirs``, without
        following links; counting stops past ``budget``. Iterative: code may nest
        directories deep (what lies past PATH_MAX is left to the hard bound)."""
        size = files = 0
        stack = [(d, self._shared is not None and d == self._shared[0]) for d in dirs]
        while stack:
            top, shared = stack.pop()
            with contextlib.suppress(OSError), os.scandir(top) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        st = entry.stat(follow_symlinks=False)
                        if shared and not self._runs(st):
                            continue
                        files += 1
                        size += st.st_blocks * 512
                        if stat.S_ISDIR(st.st_mode):
                            stack.append((entry.path, shared))
                    if files > budget:
                        return size, files
        return size, files

    def _runs(self, st: os.stat_result) -> bool:
        """In a shared directory: made or changed by the run's uid since it started."""
        assert self._shared is not None
        return st.st_uid == self._shared[1] and st.st_ctime_ns >= self._started_ns
