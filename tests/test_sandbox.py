"""The supervisor, unconfined: scrubbed environment, bounded output, whole process group killed."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from swarmchat.sandbox import supervise
from swarmchat.sandbox.tiers import UnconfinedExecutor


def run(ws: Path, code: str, timeout: float = 10):
    (ws / "t.py").write_text(code)
    return asyncio.run(UnconfinedExecutor("python3").run("t.py", ws, timeout))


def test_output_exit_code_and_stderr(tmp_path: Path) -> None:
    r = run(tmp_path, "import sys\nprint('héllo')\nprint('oops', file=sys.stderr)\nsys.exit(3)\n")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "héllo\n", "oops\n")


def test_secrets_are_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "GITHUB_TOKEN",
        "MY_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "STRIPE_KEY",
        "OPENAI_BASE_URL",
    ):
        monkeypatch.setenv(name, "sk-leak-" + name)
    monkeypatch.setenv("HARMLESS", "visible")
    r = run(tmp_path, "import os\nfor k, v in sorted(os.environ.items()): print(k, v)\n")
    assert "sk-leak" not in r.stdout
    assert "HARMLESS visible" in r.stdout
    # Host-side oracle: the child's real environment, read from /proc while it runs.
    (tmp_path / "env.py").write_text(
        "import os, time\nopen('pid', 'w').write(str(os.getpid()))\n"
        "for _ in range(500):\n    if os.path.exists('release'):\n        break\n    time.sleep(0.01)\n"
    )

    async def scenario() -> bytes:
        task = asyncio.create_task(UnconfinedExecutor("python3").run("env.py", tmp_path, 10))
        pid_file = tmp_path / "pid"
        for _ in range(250):
            if pid_file.exists() and pid_file.read_text():
                break
            await asyncio.sleep(0.02)
        environ = Path(f"/proc/{pid_file.read_text()}/environ").read_bytes()
        (tmp_path / "release").touch()  # the script waits for this before it exits
        await task
        return environ

    environ = asyncio.run(scenario())
    assert b"HARMLESS=visible" in environ
    assert b"sk-leak" not in environ


def test_timeout_kills_children_and_grandchildren(tmp_path: Path) -> None:
    code = (
        "import os, subprocess, sys, time\n"
        "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"
        " for _ in range(2)]\n"
        "open('pids', 'w').write(' '.join(str(k.pid) for k in kids))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    r = run(tmp_path, code, timeout=1.5)
    assert r.timed_out and r.exit_code is None
    assert time.monotonic() - started < 8
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def test_background_child_holding_pipes_does_not_hang(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('main done')\n"
    )
    started = time.monotonic()
    r = run(tmp_path, code, timeout=20)
    assert r.exit_code == 0 and r.stdout == "main done\n"
    assert time.monotonic() - started < 5


def test_output_is_capped_with_a_note(tmp_path: Path) -> None:
    r = run(tmp_path, "print('x' * 200_000)\n")
    assert r.truncated and len(r.stdout) < supervise.OUTPUT_CAP + 200
    assert "[output cut:" in r.stdout


def test_output_flood_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "FLOOD_LIMIT", 1_000_000)
    started = time.monotonic()
    r = run(tmp_path, "while True: print('y' * 1000)\n", timeout=30)
    assert r.flooded and time.monotonic() - started < 10


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie awaiting its reaper is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_cancelling_a_run_kills_the_process_group(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(
        "import os, subprocess, sys, time\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "open('pids', 'w').write(f'{os.getpid()} {kid.pid}')\n"
        "time.sleep(60)\n"
    )

    async def scenario() -> None:
        task = asyncio.create_task(UnconfinedExecutor("python3").run("t.py", tmp_path, 60))
        for _ in range(250):
            if (tmp_path / "pids").exists() and (tmp_path / "pids").read_text():
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
