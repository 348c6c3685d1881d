"""Helpers for the sandbox suites: one executor per tier, runs, and host-side oracles.

Oracles look at the host (files, listeners, /proc), never at what the sandboxed script
says about itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from swarmchat.sandbox import ExecResult, Executor, Sandbox

TIERS = ("bwrap", "landlock")
_executors: dict[str, Executor | str] = {}


def executor_for(tier: str) -> Executor:
    if tier not in _executors:
        box = Sandbox(tier, python=sys.executable)  # type: ignore[arg-type]
        chosen = asyncio.run(box.executor())
        _executors[tier] = chosen if chosen.confined else "; ".join(s.detail for s in box.statuses)
    found = _executors[tier]
    if isinstance(found, str):
        pytest.skip(f"sandbox tier {tier} does not work on this machine: {found}")
    return found


def script_name() -> str:
    """A file name unique to this run, so the host can find its processes in /proc."""
    return f"agent_{uuid.uuid4().hex[:12]}.py"


def run(tier: str, ws: Path, code: str, *, timeout: float = 10, network: bool = False,
        name: str | None = None) -> ExecResult:  # fmt: skip
    name = name or script_name()
    (ws / name).write_text(code)
    return asyncio.run(executor_for(tier).run(name, ws, timeout, network))


def pids_running(marker: str) -> list[int]:
    """Host PIDs of live (non-zombie) processes whose command line mentions ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(") ", 1)[1][0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(marker: str, seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := pids_running(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
