"""Runs agent-written Python files: the only module that starts processes.

This is the unconfined ``local`` executor: a scrubbed environment, stdin from /dev/null,
its own session and process group (killed whole on timeout or cancel), bounded output.
OS-level isolation slots in behind the same :class:`Executor` interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from swarmchat.settings import scrubbed_env

OUTPUT_CAP = 32 * 1024
FLOOD_LIMIT = 8 * 1024 * 1024  # past this many bytes the run is stopped
DRAIN_SECONDS = 0.5


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    flooded: bool = False


class Executor(Protocol):
    """Something that can run ``python file`` in a workspace with a deadline."""

    name: str

    async def run(self, file: str, workspace: Path, timeout: float) -> ExecResult: ...


class LocalExecutor:
    """Unconfined subprocess executor with supervisor discipline."""

    name = "local"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or os.environ.get("SWARMCHAT_PYTHON") or "python3"

    def env(self, workspace: Path) -> dict[str, str]:
        env = scrubbed_env(os.environ)
        env.pop("PYTHONSTARTUP", None)
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
        return env

    async def run(self, file: str, workspace: Path, timeout: float) -> ExecResult:
        proc = await asyncio.create_subprocess_exec(
            self.python, file,
            cwd=str(workspace),
            env=self.env(workspace),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )  # fmt: skip
        out, err = _Capture(), _Capture()
        assert proc.stdout is not None and proc.stderr is not None
        both = [out, err]

        def on_flood() -> None:
            _kill_group(proc.pid)

        readers = [
            asyncio.create_task(_pump(proc.stdout, out, both, on_flood)),
            asyncio.create_task(_pump(proc.stderr, err, both, on_flood)),
        ]
        timed_out = False
        try:
            timed_out = not await _wait_exit(proc, timeout)
            # Children that kept the pipes open get a short drain, then the group dies.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*readers), DRAIN_SECONDS)
        finally:
            _kill_group(proc.pid)
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await _reap(proc)
        flooded = out.flooded or err.flooded
        return ExecResult(
            exit_code=None if (timed_out or flooded) else proc.returncode,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            truncated=out.dropped > 0 or err.dropped > 0,
            flooded=flooded,
        )


async def _wait_exit(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    """Wait for the main process itself to exit (True) or the deadline (False).

    ``proc.wait()`` is not enough: asyncio also waits for the pipes to close, which a
    background grandchild can keep open forever.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.005
    while proc.returncode is None:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 2, 0.05)
    return True


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Collect the process and close the transport now, while the loop still runs (a
    descendant outside the group may still hold the pipes; asyncio would wait on them)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 2.0)
    transport = getattr(proc, "_transport", None)  # asyncio offers no public close
    if transport is not None:
        transport.close()


class _Capture:
    """Keeps the first ``OUTPUT_CAP`` bytes and counts the rest."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0
        self.flooded = False

    def add(self, chunk: bytes) -> None:
        room = OUTPUT_CAP - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    @property
    def total(self) -> int:
        return len(self.data) + self.dropped

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[output cut: {self.dropped} more bytes not shown]"
        return text


async def _pump(
    stream: asyncio.StreamReader, sink: _Capture, both: list[_Capture], on_flood: Callable[[], None]
) -> None:
    while chunk := await stream.read(65536):
        sink.add(chunk)
        if sum(c.total for c in both) > FLOOD_LIMIT:
            sink.flooded = True
            on_flood()
            return


def _kill_group(pgid: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
