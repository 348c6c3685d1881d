"""One cgroup per run, in every controller we may write: a process cap and a memory cap.

RLIMIT_NPROC does not bind root and RLIMIT_AS is per process (a run of many processes
multiplies it), so a pids and a memory cgroup are what bound a run as a whole. They also
let the supervisor find and kill every process of the run afterwards, including daemons
that left the process group. They can be made as root, or inside a cgroup delegated to
our uid (systemd's ``Delegate=yes``); elsewhere the run has rlimits only.

cgroup v1 mounts each controller on its own hierarchy (one directory per controller);
v2 has one directory with both. Directories are tried at the hierarchy's root first (so
swarmchat's own cgroup is never touched when it need not be), then under our own cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "swarmchat-"  # then the pid of the swarmchat that made it
CONTROLLERS = ("pids", "memory")


@dataclass
class RunCgroup:
    """The cgroup directories of one run and the limits that hold in them."""

    dirs: list[Path] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)  # controller -> limit written

    @classmethod
    def create(cls, max_pids: int, memory_bytes: int | None = None) -> RunCgroup | None:
        """Fresh cgroups limited to ``max_pids`` processes and ``memory_bytes`` of memory
        (RAM and swap together), or None where no controller may be written."""
        group = cls()
        name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        wanted = {"pids": max_pids, **({"memory": memory_bytes} if memory_bytes else {})}
        unified = _v2_base()
        if unified is not None:
            group._make_v2(unified, name, wanted)
        else:
            for controller, limit in wanted.items():
                group._make_v1(controller, name, limit)
        return group if group.dirs else None

    def _make_v1(self, controller: str, name: str, limit: int) -> None:
        hierarchy = ROOT / controller
        if not (hierarchy / "cgroup.procs").exists():
            return
        files = {  # v1's memsw is RAM + swap together: the same number
            "pids": [("pids.max", limit)],
            "memory": [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", limit)],
        }
        for base in _candidates(hierarchy, controller):
            path = _mkdir(base / name)
            if path is None:
                continue
            if _write_limits(path, files[controller]):
                self.dirs.append(path)
                self.limits[controller] = limit
                return
            _rmdir(path)

    def _make_v2(self, unified: Path, name: str, wanted: dict[str, int]) -> None:
        files = {  # v2's swap.max counts swap alone: none
            "pids": [("pids.max", wanted.get("pids", 0))],
            "memory": [("memory.max", wanted.get("memory", 0)), ("memory.swap.max", 0)],
        }
        for base in _candidates(unified, ""):
            try:
                enabled = set((base / "cgroup.subtree_control").read_text().split())
            except OSError:
                continue
            usable = {c: v for c, v in wanted.items() if c in enabled}
            path = _mkdir(base / name) if usable else None
            if path is None:
                continue
            held = {c: v for c, v in usable.items() if _write_limits(path, files[c])}
            if held:
                self.dirs.append(path)
                self.limits.update(held)
                return
            _rmdir(path)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def _kill_pass(self) -> bool:
        """SIGKILL everything in the cgroups once; False when nothing was left."""
        pids = self.pids()
        for d in self.dirs:
            kill = d / "cgroup.kill"  # v2 (Linux 5.14+): atomic, no fork can slip past it
            if pids and kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return bool(pids)

    def _rmdir_pass(self) -> bool:
        """Remove what can be removed; False when every directory is gone."""
        self.dirs = [d for d in self.dirs if not _rmdir(d)]
        return bool(self.dirs)

    async def close(self) -> None:
        """Kill every process of the run, then remove the cgroups. Shielded, and finished
        synchronously if cancelled anyway (a second Ctrl-C): no process or directory of
        the run may outlive it."""
        task = asyncio.ensure_future(self._close())
        try:
            await asyncio.shield(task)
        except BaseException:
            self.close_now()
            raise

    async def _close(self, seconds: float = 3.0) -> None:
        deadline = time.monotonic() + seconds
        while self._kill_pass() and time.monotonic() < deadline:  # a fork may race a pass
            await asyncio.sleep(0.01)
        while self._rmdir_pass() and time.monotonic() < deadline:  # the dying leave late
            await asyncio.sleep(0.01)

    def close_now(self, seconds: float = 2.0) -> None:
        """The same, blocking: for paths where the event loop may not run again."""
        deadline = time.monotonic() + seconds
        while self._kill_pass() and time.monotonic() < deadline:
            time.sleep(0.01)
        while self._rmdir_pass() and time.monotonic() < deadline:
            time.sleep(0.01)


def _v2_base() -> Path | None:
    return ROOT if (ROOT / "cgroup.controllers").exists() else None


def _candidates(hierarchy: Path, controller: str) -> list[Path]:
    """The hierarchy's root, then our own cgroup in it (where a delegation would be)."""
    found = [hierarchy]
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if (controller in names.split(",")) if controller else names == "":
                own = hierarchy / path.lstrip("/")
                if own != hierarchy and own.is_dir():
                    found.append(own)
    return found


_swept: set[Path] = set()


def _sweep(base: Path) -> None:
    """Remove empty cgroups left by swarmchat processes that died (SIGKILL, power loss),
    once per directory and process. A cgroup that still holds processes is left alone:
    its owner may live in another pid namespace."""
    if base in _swept:
        return
    _swept.add(base)
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            pid = entry.name[len(PREFIX) :].split("-", 1)[0]
            ours = entry.name.startswith(PREFIX) and pid.isdigit()
            if ours and not Path(f"/proc/{pid}").exists() and not RunCgroup([entry]).pids():
                _rmdir(entry)


def _mkdir(path: Path) -> Path | None:
    _sweep(path.parent)
    try:
        path.mkdir(mode=0o755)
    except OSError:
        return None
    return path


def _write_limits(path: Path, files: list[tuple[str, int]]) -> bool:
    """Write each limit; the first must hold, the others wherever the file exists."""
    for n, (name, limit) in enumerate(files):
        try:
            (path / name).write_text(str(limit))
        except OSError:
            if n == 0 or (path / name).exists():
                return False
    return True


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
