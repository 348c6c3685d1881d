"""Per-run cost of each sandbox tier against a bare ``python3`` run of the same file.

Target (issues 3 and 8): tier 1 (bubblewrap) adds under 50 ms per run, including the
private copy of a small workspace that every ``ExecutePyFile`` runs on ("+ copy": a
session refreshes its copy between runs; "+ new copy": the session's first run, which
makes it). The copy's cost depends on where it lives: set ``SWARMCHAT_RUN_DIR`` to a tmpfs
to measure that case. Not a test: run
``make bench`` and read the numbers. As root, the rows "as nobody" measure the path where
code drops to uid 65534 (a system interpreter), against a bare run of that interpreter.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swarmchat.copies import CopyPool
from swarmchat.sandbox.tiers import Sandbox, UnconfinedExecutor
from swarmchat.workspace import Workspace

RUNS = 25
SCRIPT = "import json, os\nprint(json.dumps({'cwd': os.getcwd()}))\n"


SYSTEM_PYTHON = "/usr/bin/python3"


def bare(ws: Path, python: str = sys.executable) -> float:
    start = time.perf_counter()
    subprocess.run([python, "t.py"], cwd=ws, capture_output=True, check=True)
    return time.perf_counter() - start


async def through(executor, ws: Path) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = await executor.run("t.py", ws, 30)
    assert result.exit_code == 0, result.stderr
    return time.perf_counter() - start


async def through_copy(executor, project: Path, copies: CopyPool) -> float:  # type: ignore[no-untyped-def]
    """As ExecutePyFile runs code: the session's private copy of a small project, made
    (first run) or refreshed (later runs), then the sync back."""
    start = time.perf_counter()
    with copies.staged(Workspace(project), "t.py", SCRIPT.encode(), executor.run_as) as run:
        result = await executor.run("t.py", run.root, 30)
        run.sync_back()
    assert result.exit_code == 0, result.stderr
    return time.perf_counter() - start


def small_project(root: Path) -> Path:
    """A typical small workspace: 60 source and data files, about 200 KB."""
    project = root / "project"
    (project / "pkg").mkdir(parents=True)
    for i in range(40):
        (project / "pkg" / f"m{i}.py").write_text("x = 1\n" * 500)
    for i in range(20):
        (project / f"data{i}.csv").write_text("a,b\n1,2\n" * 300)
    (project / "t.py").write_text(SCRIPT)
    return project


async def main() -> None:
    base_dir = tempfile.mkdtemp()
    os.chmod(base_dir, 0o755)  # uid 65534 must reach the workspace below
    try:
        ws = Path(base_dir, "ws")
        ws.mkdir()
        (ws / "t.py").write_text(SCRIPT)
        rows = {"bare python3 (subprocess.run)": [bare(ws) for _ in range(RUNS)]}
        baselines = {"bare python3 (subprocess.run)": ""}
        executors = {"supervisor, unconfined": UnconfinedExecutor(sys.executable)}
        as_nobody = os.getuid() == 0 and os.access(SYSTEM_PYTHON, os.X_OK)
        pythons = [sys.executable, *([SYSTEM_PYTHON] if as_nobody else [])]
        for python in pythons:
            for tier in ("bwrap", "landlock"):
                box = Sandbox(tier, python=python)  # type: ignore[arg-type]
                chosen = await box.executor()
                label = f"tier {tier}" + (" as nobody" if chosen.run_as else "")
                if chosen.confined and (python == sys.executable or chosen.run_as):
                    executors[label] = chosen
                elif not chosen.confined:
                    print(f"(tier {tier} unavailable: {box.statuses[-1].detail})")
        for label, executor in executors.items():
            if executor.run_as:
                os.chown(ws, *executor.run_as)
                if "bare system python3" not in rows:
                    rows["bare system python3"] = [bare(ws, SYSTEM_PYTHON) for _ in range(RUNS)]
                    baselines["bare system python3"] = "bare system python3"
                baselines[label] = "bare system python3"
            await through(executor, ws)  # warm up
            rows[label] = [await through(executor, ws) for _ in range(RUNS)]
            if executor.confined and not executor.run_as:
                project = small_project(Path(base_dir))
                fresh = [await through_copy(executor, project, CopyPool(keep=False)) for _ in range(RUNS)]
                rows[f"{label} + new copy"] = fresh
                copies = CopyPool()
                await through_copy(executor, project, copies)  # the session's first run
                rows[f"{label} + copy"] = [await through_copy(executor, project, copies) for _ in range(RUNS)]
                copies.close()
                shutil.rmtree(project)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    print(f"{'run of a small script':32} {'median ms':>10} {'extra ms':>9}")
    for label, samples in rows.items():
        median = statistics.median(samples)
        base = statistics.median(rows[baselines.get(label) or "bare python3 (subprocess.run)"])
        print(f"{label:32} {median * 1000:10.1f} {(median - base) * 1000:9.1f}")


if __name__ == "__main__":
    asyncio.run(main())
