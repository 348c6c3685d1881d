"""The isolation tiers, and the choice of one per session.

A :class:`Sandbox` picks the strongest tier that works on this machine, probing once per
session: bubblewrap, then Landlock + seccomp, else it refuses to run code unless the user
opted in to unconfined execution. Every tier starts its processes through the shared
supervisor (``supervise.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from swarmchat.environment import scrubbed_env
from swarmchat.errors import ToolError
from swarmchat.sandbox import TIERS, ExecutorKind, SandboxMode, TierName, confine, jail
from swarmchat.sandbox.confine import EtcDir, Limits, Runtime
from swarmchat.sandbox.supervise import ExecResult, supervise, supervise_jailed


class Executor:
    """Runs ``python file`` in a workspace with a deadline; one subclass per kind."""

    name: ClassVar[ExecutorKind]
    refusal: str | None = None  # why no code will run: set only when nothing can run it

    @property
    def confined(self) -> bool:
        return self.name in TIERS

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        raise NotImplementedError


# --- tiers -------------------------------------------------------------------------------


class UnconfinedExecutor(Executor):
    """No isolation: only a scrubbed environment and the supervisor's limits."""

    name = "none"

    def __init__(self, python: str) -> None:
        self.python = python

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        env = scrubbed_env(os.environ)
        env.pop("PYTHONSTARTUP", None)
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
        return await supervise([self.python, file], workspace, env, timeout)


@dataclass
class BwrapExecutor(Executor):
    """Tier 1: bubblewrap namespaces, empty root, rlimits and seccomp."""

    name: ClassVar[ExecutorKind] = "bwrap"
    bwrap: str
    runtime: Runtime
    limits: Limits
    etc: EtcDir = field(default_factory=EtcDir)

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
class LandlockExecutor(Executor):
    """Tier 2: Landlock (files, TCP), seccomp (no IP sockets) and rlimits, no namespaces."""

    name: ClassVar[ExecutorKind] = "landlock"
    runtime: Runtime
    limits: Limits

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


class RefusingExecutor(Executor):
    """No tier works and the user did not opt in: code is not run."""

    name = "refused"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.refusal = (
            f"no sandbox is available on this machine ({reason}). Tell the user: `swarmchat "
            "doctor` explains why; --unsafe-local-exec runs code without isolation."
        )

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        raise ToolError(f"{file} was not run: {self.refusal}")


# --- choosing a tier ---------------------------------------------------------------------


@dataclass(frozen=True)
class TierStatus:
    name: TierName
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
        self._probed: dict[TierName, tuple[Executor | None, TierStatus]] = {}
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
        tiers: tuple[TierName, ...] = TIERS if self.mode == "auto" else (self.mode,)
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
        return [(await self._probe(tier, runtime))[1] for tier in TIERS]

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

    async def _probe(self, tier: TierName, runtime: Runtime) -> tuple[Executor | None, TierStatus]:
        """Probe a tier once; ``doctor`` and the session's choice share the answer."""
        if tier not in self._probed:
            self._probed[tier] = await self._probe_uncached(tier, runtime)
        return self._probed[tier]

    async def _probe_uncached(self, tier: TierName, runtime: Runtime) -> tuple[Executor | None, TierStatus]:
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
