"""Startup benchmark: ``swarmchat --version`` / ``--help`` against ``python3 -c pass`` and
``python3 -c 'import openai'`` on the same machine, as ratios. Not a test: run
``make bench`` and read the numbers."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 7


def timed(cmd: list[str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    exe = shutil.which("swarmchat", path=str(Path(sys.executable).parent)) or "swarmchat"
    base = timed([sys.executable, "-c", "pass"])
    rows = [
        ("python3 -c pass", [sys.executable, "-c", "pass"]),
        ("python3 -c 'import openai'", [sys.executable, "-c", "import openai"]),
        ("swarmchat --version", [exe, "--version"]),
        ("swarmchat --help", [exe, "--help"]),
        ("swarmchat agents", [exe, "agents"]),
    ]
    print(f"{'command':32} {'median s':>9} {'x python':>9}")
    for label, cmd in rows:
        t = timed(cmd)
        print(f"{label:32} {t:9.3f} {t / base:9.1f}")


if __name__ == "__main__":
    main()
