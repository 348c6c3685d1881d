"""Runs agent-written Python files: the only module that starts processes.

A :class:`Sandbox` picks the strongest isolation tier that works on this machine, probing
once per session: bubblewrap, then Landlock + seccomp, else it refuses to run code unless
the user opted in to unconfined execution. Every tier shares one supervisor: stdin from
/dev/null, its own session and process group (killed whole on timeout, cancel or flood),
bounded output, and an explicit close of the pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from swarmchat import confine, jail
from swarmchat.cgroups import PidsCgroup
from swarmchat.confine import EtcDir, Limits, Runtime
from swarmchat.errors import ToolError
from swarmchat.settings import scrubbed_env

OUTPUT_CAP = 32 * 1024
FLOOD_LIMIT = 8 * 1024 * 1024  # past this many bytes the run is stopped
DRAIN_SECONDS = 0.5
SandboxMode = Literal["auto", "bwrap", "landlock", "none"]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    flooded: bool = False


class Executor(Protocol):
    """Runs ``python file`` in a workspace with a deadline."""

    name: str
    confined: bool

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult: ...


# --- tiers -------------------------------------------------------------------------------


class UnconfinedExecutor:
    """No isolation: only a scrubbed environment and the supervisor's limits."""

    name = "none"
    confined = False

    def __init__(self, python: str) -> None:
        self.python = python

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        env = scrubbed_env(os.environ)
        env.pop("PYTHONSTARTUP", None)
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
        return await supervise([self.python, file], workspace, env, timeout)


@dataclass
class BwrapExecutor:
    """Tier 1: bubblewrap namespaces, empty root, rlimits and seccomp."""

    bwrap: str
    runtime: Runtime
    limits: Limits
    etc: EtcDir = field(default_factory=EtcDir)
    name: str = "bwrap"
    confined: bool = True

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        self.etc.write(workspace)
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, jail.seccomp_program(allow_inet=network))
        finally:
            os.close(write_fd)
        try:
            inner = confine.bwrap_argv(
                self.bwrap,
                self.runtime,
                workspace,
                network=network,
                limits=self.limits,
                etc=self.etc,
                seccomp_fd=read_fd,
            )
            spec = {
                "rlimits": self.limits.rlimits(timeout, confine.user_process_count()),
                "keep_fds": [read_fd],
                "parent": os.getpid(),
                "env": {"PATH": confine.SYSTEM_PATH},
            }
            command = [*inner, "--", self.runtime.executable, file]
            return await supervise_jailed(spec, command, workspace, self.limits, timeout, pass_fds=(read_fd,))
        finally:
            os.close(read_fd)


@dataclass
class LandlockExecutor:
    """Tier 2: Landlock (files, TCP), seccomp (no IP sockets) and rlimits, no namespaces."""

    runtime: Runtime
    limits: Limits
    name: str = "landlock"
    confined: bool = True

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        with tempfile.TemporaryDirectory(prefix="swarmchat-tmp-") as tmp:
            spec = {
                "rlimits": self.limits.rlimits(timeout, confine.user_process_count()),
                "landlock": confine.landlock_paths(self.runtime, workspace, tmp, network),
                "seccomp": True,
                "supervise": True,  # no pid namespace: the jail stays as the tree's reaper
                "network": network,
                "parent": os.getpid(),
                "env": confine.sandbox_env(workspace, self.runtime, tmp),
            }
            command = [self.runtime.executable, file]
            return await supervise_jailed(spec, command, workspace, self.limits, timeout)


class RefusingExecutor:
    """No tier works and the user did not opt in: code is not run."""

    name = "refused"
    confined = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        raise ToolError(
            f"{file} was not run: no sandbox is available on this machine ({self.reason}). "
            "Tell the user: `swarmchat doctor` explains why; --unsafe-local-exec runs code "
            "without isolation."
        )


# --- choosing a tier ---------------------------------------------------------------------


@dataclass(frozen=True)
class TierStatus:
    name: str
    ok: bool
    detail: str


class Sandbox:
    """Chooses the executor for a session, probing each tier once."""

    def __init__(
        self,
        mode: SandboxMode = "auto",
        allow_unconfined: bool = False,
        python: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.mode: SandboxMode = mode
        self.allow_unconfined = allow_unconfined
        self.python = python or os.environ.get("SWARMCHAT_PYTHON") or "python3"
        self.limits = limits or Limits()
        self._chosen: Executor | None = None
        self._runtime: Runtime | None = None
        self._probed: dict[str, tuple[Executor | None, TierStatus]] = {}
        self._lock = asyncio.Lock()
        self.statuses: list[TierStatus] = []

    async def executor(self) -> Executor:
        async with self._lock:
            if self._chosen is None:
                self._chosen = await self._choose()
            return self._chosen

    async def _choose(self) -> Executor:
        if self.mode == "none":
            return UnconfinedExecutor(self.python)
        runtime = await self.runtime()
        tiers = ["bwrap", "landlock"] if self.mode == "auto" else [self.mode]
        for tier in tiers:
            executor, status = await self._probe(tier, runtime)
            self.statuses.append(status)
            if executor is not None:
                return executor
        reasons = "; ".join(f"{s.name}: {s.detail}" for s in self.statuses)
        if self.allow_unconfined:
            return UnconfinedExecutor(runtime.executable)
        return RefusingExecutor(reasons)

    async def report(self) -> list[TierStatus]:
        """Probe every tier (for ``swarmchat doctor``)."""
        runtime = await self.runtime()
        return [(await self._probe(tier, runtime))[1] for tier in ("bwrap", "landlock")]

    async def runtime(self) -> Runtime:
        """The interpreter for agent code, discovered once per session."""
        if self._runtime is None:
            self._runtime = await self._discover_runtime()
        return self._runtime

    async def _discover_runtime(self) -> Runtime:
        python = shutil.which(self.python) or self.python
        try:
            result = await supervise(
                [python, "-E", "-c", Runtime.DISCOVER], Path("/"), scrubbed_env(os.environ), 20
            )
        except FileNotFoundError:
            raise ToolError(
                f"the Python interpreter '{self.python}' was not found; set SWARMCHAT_PYTHON"
            ) from None
        if result.exit_code != 0:
            raise ToolError(f"'{self.python}' did not start: {result.stderr.strip()[:200]}")
        return Runtime.from_json(result.stdout)

    async def _probe(self, tier: str, runtime: Runtime) -> tuple[Executor | None, TierStatus]:
        """Probe a tier once; ``doctor`` and the session's choice share the answer."""
        if tier not in self._probed:
            self._probed[tier] = await self._probe_uncached(tier, runtime)
        return self._probed[tier]

    async def _probe_uncached(self, tier: str, runtime: Runtime) -> tuple[Executor | None, TierStatus]:
        executor: Executor
        if tier == "bwrap":
            bwrap = os.environ.get("SWARMCHAT_BWRAP") or shutil.which("bwrap")
            if not bwrap:
                return None, TierStatus(
                    tier, False, "bwrap is not installed (Debian/Ubuntu: apt install bubblewrap)"
                )
            executor = BwrapExecutor(bwrap, runtime, self.limits)
        else:
            abi = jail.landlock_abi()
            if abi < 1:
                return None, TierStatus(tier, False, "the kernel has no Landlock support")
            if not jail.seccomp_supported():
                return None, TierStatus(tier, False, "seccomp filter not available for this CPU")
            executor = LandlockExecutor(runtime, self.limits)
        with tempfile.TemporaryDirectory(prefix="swarmchat-probe-") as tmp:
            Path(tmp, "probe.py").write_text("print('sandbox-ok')\n")
            try:
                result = await executor.run("probe.py", Path(tmp), 20)
            except OSError as exc:
                return None, TierStatus(tier, False, f"failed to start: {exc}")
        if result.exit_code == 0 and result.stdout.strip() == "sandbox-ok":
            detail = "works" + (f" (Landlock ABI {jail.landlock_abi()})" if tier == "landlock" else "")
            return executor, TierStatus(tier, True, detail)
        why = (result.stderr.strip().splitlines() or [f"exit status {result.exit_code}"])[-1]
        return None, TierStatus(tier, False, f"probe failed: {why[:200]}")


# --- the supervisor ----------------------------------------------------------------------


async def supervise_jailed(
    spec: dict[str, object],
    command: list[str],
    cwd: Path,
    limits: Limits,
    timeout: float,
    pass_fds: tuple[int, ...] = (),
) -> ExecResult:
    """Start ``command`` through the jail trampoline, inside its own pids cgroup when one
    can be made; the cgroup is emptied afterwards, so no process of the run survives it."""
    group = PidsCgroup.create(limits.processes)
    if group is not None:
        spec["cgroup"] = group.procs_file
    try:
        return await supervise(
            confine.jail_argv(spec, command),
            cwd,
            {},
            timeout,
            pass_fds,
            terminate_first=bool(spec.get("supervise")),
        )
    finally:
        if group is not None:
            group.kill_all()
            group.remove()


async def supervise(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    pass_fds: tuple[int, ...] = (),
    terminate_first: bool = False,
) -> ExecResult:
    """Run ``argv`` to completion or deadline; the whole process group dies afterwards.

    ``terminate_first``: the process is a jail that kills its own tree on SIGTERM (it also
    reaches daemons that left the process group), so it gets that chance first."""
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
        if terminate_first and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(Exception):
                await _wait_exit(proc, 1.0)
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
    stream: asyncio.StreamReader, sink: _Capture, both: list[_Capture], on_flood: Callable[[], None]
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
