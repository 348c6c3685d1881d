"""Startup benchmark: ``swarmchat --version`` / ``--help`` and the time until the REPL
prompt is visible, against ``python3 -c pass`` and ``python3 -c 'import openai'`` on the
same machine, as ratios. Not a test: run ``make bench`` and read the numbers."""

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


def repl_prompt(exe: str) -> float:
    """Seconds until the REPL prompt is visible in a pseudo-terminal."""
    import os
    import tempfile

    import pexpect

    samples = []
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-bench-not-used",
            "SWARMCHAT_HOME": home,
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",
        }
        for _ in range(RUNS):
            start = time.perf_counter()
            child = pexpect.spawn(exe, [], env=env, cwd=home, encoding="utf-8", timeout=10)
            child.expect("you ›")
            samples.append(time.perf_counter() - start)
            child.sendcontrol("d")
            child.expect(pexpect.EOF)
            child.close()
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
    print(f"{'command':32} {'median s':>9} {'x python':>9} {'x import openai':>16}")
    results = [(label, timed(cmd)) for label, cmd in rows]
    openai_import = results[1][1]
    results.append(("swarmchat REPL prompt visible", repl_prompt(exe)))
    for label, t in results:
        print(f"{label:32} {t:9.3f} {t / base:9.1f} {t / openai_import:16.2f}")
    print("targets: --version and --help under 0.25 s; REPL prompt under 0.5 s")


if __name__ == "__main__":
    main()
