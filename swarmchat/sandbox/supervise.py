"""The supervisor every tier shares: the only place agent code's processes are started.

stdin from /dev/null, its own session and process group (killed whole on timeout, cancel
or flood), bounded output, exit detected with a pidfd (a background grandchild holding the
pipes cannot stall it), and an explicit close of the pipes. Clean-up holds on every way
out, a second cancellation (Ctrl-C twice) included: what must happen then happens
synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarmchat.sandbox import confine
from swarmchat.sandbox.cgroups import RunCgroup
from swarmchat.sandbox.confine import Limits
from swarmchat.sandbox.diskguard import DiskGuard

OUTPUT_CAP = 32 * 1024
FLOOD_LIMIT = 8 * 1024 * 1024  # past this many bytes the run is stopped
DRAIN_SECONDS = 0.5
TERM_GRACE_SECONDS = 1.0  # a jail told to stop gets this long to kill its tree


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    flooded: bool = False
    stopped: str = ""  # why it was stopped early, when not for time or output


async def supervise_jailed(
    spec: dict[str, object],
    command: list[str],
    cwd: Path,
    limits: Limits,
    timeout: float,
    pass_fds: tuple[int, ...] = (),
    writes_to: tuple[Path, ...] = (),
    shared_writes: tuple[str, int] | None = None,
) -> ExecResult:
    """Start ``command`` through the jail trampoline, inside its own pids and memory
    cgroups where they can be made; they are emptied and removed afterwards, so no process
    of the run survives it. What it writes to ``writes_to`` (host directories) is bounded."""
    group = RunCgroup.create(limits.processes, limits.run_memory_bytes)
    if group is not None:
        spec["cgroups"] = group.procs_files
    try:
        return await supervise(
            confine.jail_argv(spec, command),
            cwd,
            {},
            timeout,
            pass_fds,
            terminate_first=bool(spec.get("supervise")),
            guard=DiskGuard(list(writes_to), shared=shared_writes) if writes_to else None,
        )
    finally:
        if group is not None:
            await group.close()


async def supervise(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    pass_fds: tuple[int, ...] = (),
    terminate_first: bool = False,
    guard: DiskGuard | None = None,
) -> ExecResult:
    """Run ``argv`` to completion or deadline; the whole process group dies afterwards.

    ``terminate_first``: the process is a jail that kills its own tree on SIGTERM (it also
    reaches daemons that left the process group), so it gets that chance first.
    ``guard``: stops the run once it writes too much to the host's disks."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        pass_fds=pass_fds,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Capture(), _Capture()
    readers = [
        asyncio.create_task(_pump(proc.stdout, out, (out, err), lambda: _kill_group(proc.pid))),
        asyncio.create_task(_pump(proc.stderr, err, (out, err), lambda: _kill_group(proc.pid))),
    ]
    timed_out = False

    def stop() -> None:  # as at the deadline: a jail gets to kill its tree (daemons too)
        if not terminate_first:
            _kill_group(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)

    watcher = asyncio.create_task(guard.watch(stop)) if guard else None
    try:
        timed_out = not await _wait_exit(proc, timeout)
        # Children that kept the pipes open get a short drain, then the group dies.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*readers), DRAIN_SECONDS)
    finally:
        if watcher is not None:
            watcher.cancel()
        await _end(proc, readers, terminate_first)
    flooded = out.flooded or err.flooded
    stopped = guard.reason if guard else ""
    return ExecResult(
        exit_code=None if (timed_out or flooded or stopped) else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        truncated=out.dropped > 0 or err.dropped > 0,
        flooded=flooded,
        stopped=stopped,
    )


async def _end(
    proc: asyncio.subprocess.Process, readers: list[asyncio.Task[None]], terminate_first: bool
) -> None:
    """Whatever happened (exit, deadline, flood, cancel): the process group dies, the
    readers stop, the process is reaped and its pipes are closed."""
    try:
        if terminate_first and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                with contextlib.suppress(Exception):
                    await _wait_exit(proc, TERM_GRACE_SECONDS)
            except asyncio.CancelledError:  # cancelled again: the jail still gets its grace
                _wait_exit_blocking(proc.pid, TERM_GRACE_SECONDS)
                raise
    finally:
        _kill_group(proc.pid)
        for task in readers:
            task.cancel()
    try:
        await asyncio.gather(*readers, return_exceptions=True)
        await _reap(proc)
    except asyncio.CancelledError:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        raise


def _wait_exit_blocking(pid: int, timeout: float) -> None:
    """Block until ``pid`` exits or ``timeout`` passes (for when the loop cannot wait)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


async def _wait_exit(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    """Wait for the main process itself to exit (True) or the deadline (False).

    ``proc.wait()`` is not enough: asyncio also waits for the pipes to close, which a
    background grandchild can keep open forever. A pidfd wakes us the moment the process
    exits; where there is none, poll.
    """
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        exited: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            await asyncio.wait_for(exited, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    deadline = loop.time() + timeout
    delay = 0.002
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
        # os.kill, not proc.kill(): Popen.send_signal polls first and would reap the child
        # behind asyncio's watcher, which then reports a bogus exit status.
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
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
    stream: asyncio.StreamReader, sink: _Capture, both: tuple[_Capture, ...], on_flood: Callable[[], None]
) -> None:
    while chunk := await stream.read(65536):
        sink.add(chunk)
        if sum(c.total for c in both) > FLOOD_LIMIT:
            sink.flooded = True
            on_flood()
            return


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
