"""Per-run cgroups on both layouts. This machine has cgroup v1 (the role suites prove v1
with the kernel's own enforcement); v2 is checked here on a stand-in directory tree, so
the file names and the order of writes are right where the kernel is not available."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from swarmchat.sandbox import cgroups


@pytest.fixture
def unified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    return tmp_path


def test_v2_one_directory_holds_both_limits(unified: Path) -> None:
    group = cgroups.RunCgroup.create(256, 1 << 30)
    assert group is not None and len(group.dirs) == 1
    made = group.dirs[0]
    assert made.parent == unified and made.name.startswith(f"swarmchat-{os.getpid()}-")
    assert (made / "pids.max").read_text() == "256"
    assert (made / "memory.max").read_text() == str(1 << 30)
    assert group.limits == {"pids": 256, "memory": 1 << 30}
    assert group.procs_files == [str(made / "cgroup.procs")]


def test_v2_without_the_memory_controller_keeps_pids(unified: Path) -> None:
    (unified / "cgroup.subtree_control").write_text("pids\n")
    group = cgroups.RunCgroup.create(64, 1 << 30)
    assert group is not None and group.limits == {"pids": 64}


def test_no_writable_hierarchy_means_no_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "ROOT", tmp_path / "absent")
    assert cgroups.RunCgroup.create(64, 1 << 30) is None


def test_close_removes_the_directories_even_when_cancelled_twice() -> None:
    group = cgroups.RunCgroup.create(16, 64 << 20)
    if group is None:
        pytest.skip("no cgroup can be made here (needs root or a delegated cgroup)")
    made = list(group.dirs)
    assert made and all(d.is_dir() for d in made)

    async def scenario() -> None:
        task = asyncio.create_task(group.close())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])

    asyncio.run(scenario())
    assert [d for d in made if d.exists()] == []
