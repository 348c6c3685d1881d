"""Host-side process oracles shared by the REPL and sandbox suites."""

from __future__ import annotations

import os
import time
from pathlib import Path


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
