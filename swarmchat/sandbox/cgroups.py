"""A pids cgroup per run, where the kernel lets us make one (usually: running as root).

RLIMIT_NPROC does not bind root, so as root a fork bomb would only be stopped by the
clock; a cgroup caps the count for any user. It also lets the supervisor find and kill
every process of the run afterwards, including daemons that left the process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/pids")
_V2 = Path("/sys/fs/cgroup")


class PidsCgroup:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> PidsCgroup | None:
        """A fresh cgroup limited to ``max_pids`` processes, or None where not permitted."""
        for base in _bases():
            path = base / f"swarmchat-{uuid.uuid4().hex[:12]}"
            try:
                path.mkdir(mode=0o755)
            except OSError:
                continue
            try:
                (path / "pids.max").write_text(str(max_pids))
                return cls(path)
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
        return None

    @property
    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    async def kill_all(self, seconds: float = 3.0) -> None:
        """SIGKILL everything in the cgroup (repeatedly: a fork may race the first pass).
        Async, so the waits between passes never stall the event loop."""
        kill = self.path / "cgroup.kill"
        deadline = time.monotonic() + seconds
        while (pids := self.pids()) and time.monotonic() < deadline:
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.01)

    async def remove(self) -> None:
        for _ in range(100):  # dying processes leave the cgroup a moment after SIGKILL
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Kill every process of the run, then remove the cgroup. Shielded: a second
        Ctrl-C while this runs must not leave processes or a cgroup behind."""
        await asyncio.shield(self._close())

    async def _close(self) -> None:
        await self.kill_all()
        await self.remove()


def _bases() -> list[Path]:
    bases = []
    if (_V1 / "cgroup.procs").exists() and not (_V1 / "cgroup.controllers").exists():
        bases.append(_V1)
    try:
        if "pids" in (_V2 / "cgroup.subtree_control").read_text().split():
            bases.append(_V2)
    except OSError:
        pass
    return bases
