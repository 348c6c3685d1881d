"""Class 7: what one run writes to the host's disks is bounded (files and bytes).

Oracles are on the host: the filesystem's free inodes and blocks, polled from a thread
while the run goes on, and the wall clock.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest
from sbx_helpers import run

from swarmchat.sandbox.diskguard import DiskGuard, WriteLimits

FLOOD_FILES = (
    "import os\nos.makedirs('flood', exist_ok=True)\n"
    "for i in range(400000):\n    open(f'flood/{i}', 'w').close()\nprint('finished')\n"
)
FLOOD_BYTES = (
    "import os\nchunk = b'x' * (1 << 20)\n"
    "for i in range(4000):\n    with open(f'big{i % 50}.bin', 'ab') as f:\n        f.write(chunk)\nprint('finished')\n"
)


class Peak:
    """Host oracle: the most inodes and bytes the filesystem of ``path`` lost meanwhile."""

    def __init__(self, path: Path) -> None:
        self.path, self.inodes, self.bytes = path, 0, 0
        vfs = os.statvfs(path)
        self._start = (vfs.f_ffree, vfs.f_bfree, vfs.f_frsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            vfs = os.statvfs(self.path)
            self.inodes = max(self.inodes, self._start[0] - vfs.f_ffree)
            self.bytes = max(self.bytes, (self._start[1] - vfs.f_bfree) * self._start[2])
            time.sleep(0.005)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_run_creating_files_without_end_is_stopped(
    tier: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARMCHAT_RUN_MAX_FILES", "2000")
    started = time.monotonic()
    with Peak(workspace) as peak:
        result = run(tier, workspace, FLOOD_FILES, timeout=60)
    assert "finished" not in result.stdout
    assert "more than 2000 files" in result.stopped or "lost more than" in result.stopped, result
    assert result.exit_code is None
    assert time.monotonic() - started < 20
    assert peak.inodes < 60000, f"the filesystem lost {peak.inodes} inodes"


def test_a_run_filling_the_disk_is_stopped(
    tier: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARMCHAT_RUN_MAX_MB", "100")
    with Peak(workspace) as peak:
        result = run(tier, workspace, FLOOD_BYTES, timeout=60)
    assert "finished" not in result.stdout
    assert "more than 100 MiB" in result.stopped or "lost more than" in result.stopped, result
    assert peak.bytes < 1 << 30, f"the filesystem lost {peak.bytes >> 20} MiB"


def test_other_programs_writing_to_the_same_disk_do_not_stop_a_run(
    tier: str, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import swarmchat.sandbox.diskguard

    monkeypatch.setenv("SWARMCHAT_RUN_MAX_FILES", "2000")
    # Other tests write to this disk at the same time: only the counting is under test here.
    monkeypatch.setattr(swarmchat.sandbox.diskguard, "HARD_FACTOR", 1000)
    elsewhere = tmp_path / "someone-else"
    elsewhere.mkdir()

    def other_program() -> None:
        for i in range(5000):
            (elsewhere / str(i)).touch()

    code = "import time\nfor i in range(10):\n    open(f'f{i}', 'w').close()\ntime.sleep(1.5)\nprint('finished')\n"
    writer = threading.Timer(0.3, other_program)
    writer.start()
    result = run(tier, workspace, code, timeout=30)
    writer.join()
    assert result.stdout.strip() == "finished" and not result.stopped, result


def test_the_guard_counts_only_its_directories_past_the_filesystem_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The filesystem's free inodes, as this test sets them (other tests share the disk).
    free = {"inodes": 1_000_000}
    real = os.statvfs

    def statvfs(path: object) -> os.statvfs_result:
        r = real(path)  # type: ignore[arg-type]
        return os.statvfs_result((*r[:5], free["inodes"], free["inodes"], *r[7:]))

    monkeypatch.setattr(os, "statvfs", statvfs)
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    guard = DiskGuard([mine], WriteLimits(bytes=1 << 40, files=100))
    free["inodes"] -= 150  # someone else's files
    assert guard._over() and guard._count() == ""  # counted: not the run's; a new baseline
    assert not guard._over()
    for i in range(150):
        (mine / str(i)).touch()
    free["inodes"] -= 150
    assert guard._over() and "more than 100 files" in guard._count()
    free["inodes"] -= 5_000_000  # the hard bound needs no counting
    assert not guard._over() and "lost more than" in guard.reason


def test_the_hosts_dev_shm_counts_in_the_landlock_tier(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARMCHAT_RUN_MAX_MB", "10")
    target = f"/dev/shm/sbxtest-fill-{os.getpid()}"
    code = (
        f"import time\nwith open({target!r}, 'wb') as f:\n    for i in range(40):\n"
        "        f.write(b'x' * (1 << 20))\n        f.flush()\n        time.sleep(0.02)\nprint('finished')\n"
    )
    try:
        result = run("landlock", workspace, code, timeout=60)
        assert "finished" not in result.stdout and "more than 10 MiB" in result.stopped, result
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
