"""The isolation tiers, and the choice of one per session.

A :class:`Sandbox` picks the strongest tier that works on this machine, probing once per
session: bubblewrap, then Landlock + seccomp, else it refuses to run code unless the user
opted in to unconfined execution. Every tier starts its processes through the shared
supervisor (``supervise.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from swarmchat.environment import scrubbed_env
from swarmchat.errors import ToolError
from swarmchat.sandbox import TIERS, SandboxMode, TierName, confine, jail, runtime
from swarmchat.sandbox.cgroups import RunCgroup
from swarmchat.sandbox.cleanup import remove_tree
from swarmchat.sandbox.confine import NOBODY, Limits, Runtime
from swarmchat.sandbox.executors import (
    BwrapExecutor,
    Executor,
    LandlockExecutor,
    RefusingExecutor,
    UnconfinedExecutor,
    private_dir,
)
from swarmchat.sandbox.protections import PROBE, Context, Protection, broken_promises, describe, parse_probe
from swarmchat.sandbox.supervise import ExecResult, supervise

__all__ = [
    "BwrapExecutor",
    "ExecResult",
    "Executor",
    "LandlockExecutor",
    "Protection",
    "RefusingExecutor",
    "Sandbox",
    "TierStatus",
    "UnconfinedExecutor",
]
DEFAULT_PARALLEL_RUNS = 4


# --- choosing a tier ---------------------------------------------------------------------


@dataclass(frozen=True)
class TierStatus:
    name: TierName
    ok: bool
    detail: str


def _parallel_runs() -> int:
    try:
        return max(1, int(os.environ.get("SWARMCHAT_MAX_PARALLEL_RUNS", "")))
    except ValueError:
        return DEFAULT_PARALLEL_RUNS


class Sandbox:
    """Chooses the executor for a session, probing each tier once, and bounds how many
    runs go at once (:meth:`slot`)."""

    def __init__(
        self,
        mode: SandboxMode = "auto",
        allow_unconfined: bool = False,
        python: str | None = None,
        limits: Limits | None = None,
        private: tuple[Path, ...] = (),
    ) -> None:
        self.mode: SandboxMode = mode
        self.private = private  # directories agent code must never see: the real workspace
        self.allow_unconfined = allow_unconfined
        self.python = python or os.environ.get("SWARMCHAT_PYTHON") or "python3"
        self.limits = limits or Limits()
        self.parallel_runs = _parallel_runs()
        self._chosen: Executor | None = None
        self._runtime: Runtime | None = None
        self._identity: tuple[Runtime, tuple[int, int] | None, str] | None = None
        self._probed: dict[TierName, tuple[Executor | None, TierStatus, dict[str, object]]] = {}
        self._lock = asyncio.Lock()
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.statuses: list[TierStatus] = []

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the session's run slots for the length of a run: at most
        ``SWARMCHAT_MAX_PARALLEL_RUNS`` (default 4) runs at once, so per-run limits (a
        memory cgroup, a process count) also bound the session."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one semaphore per event loop
            self._slots = (loop, asyncio.Semaphore(self.parallel_runs))
        async with self._slots[1]:
            yield

    async def executor(self) -> Executor:
        async with self._lock:
            if self._chosen is None:
                self._chosen = await self._choose()
            return self._chosen

    async def _choose(self) -> Executor:
        if self.mode == "none":
            return UnconfinedExecutor(self.python)
        found = await self.runtime()
        tiers: tuple[TierName, ...] = TIERS if self.mode == "auto" else (self.mode,)
        for tier in tiers:
            executor, status = await self._probe(tier, found)
            self.statuses.append(status)
            if executor is not None:
                return executor
        reasons = "; ".join(f"{s.name}: {s.detail}" for s in self.statuses)
        if self.allow_unconfined:
            return UnconfinedExecutor(found.executable)
        return RefusingExecutor(reasons)

    async def report(self) -> list[TierStatus]:
        """Probe every tier (for ``swarmchat doctor``)."""
        found = await self.runtime()
        return [(await self._probe(tier, found))[1] for tier in TIERS]

    async def protections(self, tier: TierName) -> list[Protection]:
        """What ``tier`` guarantees on this machine, each item in force or not, with why
        (for ``swarmchat doctor``). The first item says whether the tier works at all."""
        found = await self.runtime()
        executor, status = await self._probe(tier, found)
        head = Protection("tier works", status.ok, status.detail)
        if executor is None:
            return [head]
        _, run_as, why = await self._unprivileged(found)
        group = RunCgroup.create(self.limits.processes, self.limits.run_memory_bytes)
        if group is not None:
            group.close_now()
            no_cgroup = "this controller is not available here"
        else:
            no_cgroup = f"no cgroup can be made as uid {os.getuid()} (needs root or a delegated cgroup)"
        ctx = Context(
            tier=tier,
            landlock_abi=jail.landlock_abi(),
            swarmchat_uid=os.getuid(),
            run_as=run_as,
            run_as_reason=why,
            cgroup_limits=group.limits if group else {},
            cgroup_reason=no_cgroup,
            parallel_runs=self.parallel_runs,
            memory_rlimit=self.limits.memory_bytes,
        )
        return [head, *describe(ctx, self._probed[tier][2])]

    async def runtime(self) -> Runtime:
        """The interpreter for agent code, discovered once per session."""
        if self._runtime is None:
            self._runtime = (await self._discover_runtime()).away_from(self.private)
        return self._runtime

    async def _discover_runtime(self) -> Runtime:
        """Ask the interpreter where it lives, without running anything it would import on
        its own (no site, no .pth, no sitecustomize, no PYTHON* variables, cwd ``/``)."""
        python = self._which(self.python)
        try:
            result = await supervise(
                [python, *runtime.ISOLATED, "-c", runtime.DISCOVER], Path("/"), scrubbed_env(os.environ), 20
            )
        except (FileNotFoundError, PermissionError):
            raise ToolError(
                f"the Python interpreter '{self.python}' was not found; set SWARMCHAT_PYTHON"
            ) from None
        if result.exit_code != 0:
            raise ToolError(f"'{self.python}' did not start: {result.stderr.strip()[:200]}")
        return Runtime.from_json(result.stdout)

    @staticmethod
    def _which(python: str) -> str:
        """An absolute path, found on PATH without its relative entries (``.`` would find
        an interpreter planted in the current directory)."""
        if os.sep in python:
            return os.path.abspath(python)
        path = os.pathsep.join(
            p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if os.path.isabs(p)
        )
        return shutil.which(python, path=path) or python

    async def _unprivileged(self, found: Runtime) -> tuple[Runtime, tuple[int, int] | None, str]:
        """Whether code runs as uid 65534 (swarmchat is root and that uid can run the
        runtime), the runtime as that uid sees it, and why not otherwise. Probed once."""
        if self._identity is None:
            self._identity = await self._probe_identity(found)
        return self._identity

    async def _probe_identity(self, found: Runtime) -> tuple[Runtime, tuple[int, int] | None, str]:
        if os.getuid() != 0:
            return found, None, f"swarmchat runs as uid {os.getuid()}"
        spec = {"run_as": list(NOBODY), "parent": os.getpid(), "env": {"PATH": confine.SYSTEM_PATH}}
        argv = [found.executable, *runtime.ISOLATED, "-c", runtime.REACH, *found.required, *found.extra_paths]
        try:
            result = await supervise(confine.jail_argv(spec, argv), Path("/"), {}, 20)
        except OSError as exc:
            return found, None, f"the check as uid {NOBODY[0]} failed to start: {exc}"
        if result.exit_code != 0:
            why = (result.stderr.strip().splitlines() or [f"exit status {result.exit_code}"])[-1]
            return found, None, f"uid {NOBODY[0]} cannot run {found.executable} ({why[:160]})"
        unreachable = set(result.stdout.splitlines())
        if blocked := [p for p in found.required if p in unreachable]:
            return found, None, f"uid {NOBODY[0]} cannot read {blocked[0]}"
        return found.without(unreachable), NOBODY, f"code runs as uid {NOBODY[0]}"

    async def _probe(self, tier: TierName, found: Runtime) -> tuple[Executor | None, TierStatus]:
        """Probe a tier once; ``doctor`` and the session's choice share the answer."""
        if tier not in self._probed:
            self._probed[tier] = await self._probe_uncached(tier, found)
        executor, status, _ = self._probed[tier]
        return executor, status

    async def _probe_uncached(
        self, tier: TierName, found: Runtime
    ) -> tuple[Executor | None, TierStatus, dict[str, object]]:
        executor: Executor
        for_code, run_as, _ = await self._unprivileged(found)
        if tier == "bwrap":
            bwrap = os.environ.get("SWARMCHAT_BWRAP") or shutil.which("bwrap")
            if not bwrap:
                return (
                    None,
                    TierStatus(tier, False, "bwrap is not installed (Debian/Ubuntu: apt install bubblewrap)"),
                    {},
                )
            executor = BwrapExecutor(bwrap, for_code, self.limits, run_as)
        else:
            abi = jail.landlock_abi()
            if abi < 1:
                return None, TierStatus(tier, False, "the kernel has no Landlock support"), {}
            if not jail.seccomp_supported():
                return None, TierStatus(tier, False, "seccomp filter not available for this CPU"), {}
            executor = LandlockExecutor(for_code, self.limits, run_as)
        tmp = private_dir("swarmchat-probe-", run_as)
        try:
            Path(tmp, "probe.py").write_text(PROBE)
            result = await executor.run("probe.py", Path(tmp), 20)
        except OSError as exc:
            return None, TierStatus(tier, False, f"failed to start: {exc}"), {}
        finally:
            remove_tree(tmp)
        facts = parse_probe(result.stdout) if result.exit_code == 0 else None
        if facts is None:
            why = (result.stderr.strip().splitlines() or [f"exit status {result.exit_code}"])[-1]
            return None, TierStatus(tier, False, f"probe failed: {why[:200]}"), {}
        if broken := broken_promises(facts):
            return None, TierStatus(tier, False, "unsafe here: " + "; ".join(broken)), facts
        detail = "works" + (f" (Landlock ABI {jail.landlock_abi()})" if tier == "landlock" else "")
        return executor, TierStatus(tier, True, detail), facts
