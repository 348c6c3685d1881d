"""Per-run cost of each sandbox tier against a bare ``python3`` run of the same file.

Target (issue 3): tier 1 (bubblewrap) adds under 50 ms per run. Not a test: run
``make bench`` and read the numbers.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swarmchat.sandbox.tiers import Sandbox, UnconfinedExecutor

RUNS = 25
SCRIPT = "import json, os\nprint(json.dumps({'cwd': os.getcwd()}))\n"


def bare(ws: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "t.py"], cwd=ws, capture_output=True, check=True)
    return time.perf_counter() - start


async def through(executor, ws: Path) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = await executor.run("t.py", ws, 30)
    assert result.exit_code == 0, result.stderr
    return time.perf_counter() - start


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / "t.py").write_text(SCRIPT)
        rows = {"bare python3 (subprocess.run)": [bare(ws) for _ in range(RUNS)]}
        executors = {"supervisor, unconfined": UnconfinedExecutor(sys.executable)}
        for tier in ("bwrap", "landlock"):
            box = Sandbox(tier, python=sys.executable)  # type: ignore[arg-type]
            chosen = await box.executor()
            if chosen.confined:
                executors[f"tier {tier}"] = chosen
            else:
                print(f"(tier {tier} unavailable: {box.statuses[-1].detail})")
        for label, executor in executors.items():
            await through(executor, ws)  # warm up
            rows[label] = [await through(executor, ws) for _ in range(RUNS)]
    base = statistics.median(rows["bare python3 (subprocess.run)"])
    print(f"{'run of a small script':32} {'median ms':>10} {'extra ms':>9}")
    for label, samples in rows.items():
        median = statistics.median(samples)
        print(f"{label:32} {median * 1000:10.1f} {(median - base) * 1000:9.1f}")


if __name__ == "__main__":
    asyncio.run(main())
