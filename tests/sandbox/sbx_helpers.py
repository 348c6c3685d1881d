"""Helpers for the sandbox suites: one executor per tier, runs, and host-side oracles.

Oracles look at the host (files, listeners, /proc), never at what the sandboxed script
says about itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import sys
import uuid
from pathlib import Path

import pytest
from proctools import pids_running, wait_until_gone

from swarmchat.sandbox.tiers import ExecResult, Executor, Sandbox

__all__ = ["TIERS", "executor_for", "host_tree", "pids_running", "run", "script_name", "wait_until_gone"]

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


def run(
    tier: str,
    workspace: Path,
    code: str,
    *,
    timeout: float = 10,
    network: bool = False,
    name: str | None = None,
) -> ExecResult:
    name = name or script_name()
    (workspace / name).write_text(code)
    return asyncio.run(executor_for(tier).run(name, workspace, timeout, network))


def host_tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Host oracle: every entry under ``root`` with its mode, owner, group and content hash."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, digest)
    return found
