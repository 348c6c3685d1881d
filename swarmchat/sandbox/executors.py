"""What runs a file of agent code: one class per tier, all through the shared supervisor.

Each run owns what it makes (pipes, a private /tmp, cgroups) and removes it on every way
out: normal exit, error, cancellation, a second Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import ClassVar

from swarmchat.environment import scrubbed_env
from swarmchat.errors import ToolError
from swarmchat.sandbox import TIERS, ExecutorKind, confine, jail
from swarmchat.sandbox.cleanup import in_shared_memory, passable_by_all, remove_tree
from swarmchat.sandbox.confine import Limits, Runtime
from swarmchat.sandbox.diskguard import DiskGuard
from swarmchat.sandbox.supervise import ExecResult, supervise, supervise_jailed

PREFIXES = ("swarmchat-tmp-", "swarmchat-probe-")  # then the pid of the swarmchat that made it

# -s: no user site-packages. HOME is the workspace, so ~/.local/.../usercustomize.py or a
# .pth file there (left by an earlier run) would run before the approved file.
CODE_FLAGS = ("-s",)


def as_script(file: str) -> str:
    """``./name``: a file named ``-mhelper`` or ``-c...`` must not be read as an option."""
    return file if file.startswith(("/", "./")) else "./" + file


class Executor:
    """Runs ``python file`` in a workspace with a deadline; one subclass per kind."""

    name: ClassVar[ExecutorKind]
    refusal: str | None = None  # why no code will run: set only when nothing can run it
    _run_as: tuple[int, int] | None = None

    @property
    def confined(self) -> bool:
        return self.name in TIERS

    @property
    def run_as(self) -> tuple[int, int] | None:
        """The host uid and gid agent code runs as; None: swarmchat's own. When set, the
        workspace given to :meth:`run` must belong to it (a private copy, chowned)."""
        return self._run_as

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        raise NotImplementedError

    def _ids(self, workspace: Path) -> tuple[int, int]:
        """The uid/gid code runs as, after checking that it owns the workspace."""
        if self._run_as is None:
            return os.getuid(), os.getgid()
        if workspace.stat().st_uid != self._run_as[0]:
            raise ToolError(
                f"the workspace {workspace} is not owned by uid {self._run_as[0]}, which agent code "
                "runs as here: stage a private copy and chown it to Executor.run_as"
            )
        return self._run_as

    def _jail_spec(self, uid: int, timeout: float, limits: Limits) -> dict[str, object]:
        spec: dict[str, object] = {
            "rlimits": limits.rlimits(timeout, confine.user_process_count(uid)),
            "parent": os.getpid(),
        }
        if self._run_as is not None:
            spec["run_as"] = list(self._run_as)
        return spec


class UnconfinedExecutor(Executor):
    """No isolation: only a scrubbed environment and the supervisor's limits."""

    name = "none"

    def __init__(self, python: str) -> None:
        self.python = python

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        env = scrubbed_env(os.environ)
        env.pop("PYTHONSTARTUP", None)
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
        guard = DiskGuard([workspace])
        return await supervise([self.python, as_script(file)], workspace, env, timeout, guard=guard)


class BwrapExecutor(Executor):
    """Tier 1: bubblewrap namespaces, empty root, read-only /proc/sys, rlimits, seccomp;
    unprivileged (a user namespace) when swarmchat may drop to ``run_as``."""

    name: ClassVar[ExecutorKind] = "bwrap"

    def __init__(
        self, bwrap: str, runtime: Runtime, limits: Limits, run_as: tuple[int, int] | None = None
    ) -> None:
        self.bwrap, self.runtime, self.limits, self._run_as = bwrap, runtime, limits, run_as

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        uid, gid = self._ids(workspace)
        fds: list[int] = []
        try:
            seccomp_fd = _pipe_holding(jail.seccomp_program(allow_inet=network), fds)
            etc = {
                name: _pipe_holding(data, fds)
                for name, data in confine.etc_files(workspace, uid, gid).items()
            }
            inner = confine.bwrap_argv(
                self.bwrap,
                self.runtime,
                workspace,
                network=network,
                limits=self.limits,
                etc_fds=etc,
                seccomp_fd=seccomp_fd,
                user=confine.user_name(uid),
            )
            spec = self._jail_spec(uid, timeout, self.limits)
            spec.update(keep_fds=fds, env={"PATH": confine.SYSTEM_PATH})
            command = [*inner, "--", self.runtime.executable, *CODE_FLAGS, as_script(file)]
            return await supervise_jailed(
                spec, command, workspace, self.limits, timeout, pass_fds=tuple(fds), writes_to=(workspace,)
            )
        finally:
            for fd in fds:
                os.close(fd)


class LandlockExecutor(Executor):
    """Tier 2: Landlock (files, TCP, signals), seccomp, no capabilities and rlimits, no
    namespaces; as ``run_as`` when swarmchat may drop to it."""

    name: ClassVar[ExecutorKind] = "landlock"

    def __init__(self, runtime: Runtime, limits: Limits, run_as: tuple[int, int] | None = None) -> None:
        self.runtime, self.limits, self._run_as = runtime, limits, run_as

    async def run(self, file: str, workspace: Path, timeout: float, network: bool = False) -> ExecResult:
        uid, _ = self._ids(workspace)
        tmp = private_dir("swarmchat-tmp-", self._run_as)
        try:
            spec = self._jail_spec(uid, timeout, self.limits)
            spec.update(
                landlock=confine.landlock_paths(self.runtime, workspace, tmp, network),
                seccomp=True,
                drop_caps=True,
                supervise=True,  # no pid namespace: the jail stays as the tree's reaper
                network=network,
                env=confine.sandbox_env(workspace, self.runtime, tmp, confine.user_name(uid)),
            )
            command = [self.runtime.executable, *CODE_FLAGS, as_script(file)]
            return await supervise_jailed(
                spec,
                command,
                workspace,
                self.limits,
                timeout,
                writes_to=(workspace, Path(tmp)),
                shared_writes=("/dev/shm", uid),  # the host's, in this tier
            )
        finally:  # after supervise_jailed: every process of the run is dead by now
            remove_tree(tmp)


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


def _pipe_holding(data: bytes, fds: list[int]) -> int:
    """A pipe's read end, already holding ``data`` (well under the pipe buffer) and closed
    for writing; recorded in ``fds`` so the caller closes it."""
    read_fd, write_fd = os.pipe()
    fds.append(read_fd)
    try:
        assert len(data) < 65536, "would block: more than a pipe buffer"
        os.write(write_fd, data)
    finally:
        os.close(write_fd)
    return read_fd


_swept: set[str] = set()


def private_dir(prefix: str, owner: tuple[int, int] | None = None) -> str:
    """A fresh directory named after this process (so that one left behind by a swarmchat
    that was killed is recognised and removed later), handed to ``owner`` if given: then
    it lives where that uid can reach it (TMPDIR may be private to swarmchat's user)."""
    base = tempfile.gettempdir()
    if in_shared_memory(base) or (owner is not None and not passable_by_all(base)):
        base = "/tmp"  # /dev/shm: Landlock-tier code of any run can write there
    if base not in _swept:
        _swept.add(base)
        with contextlib.suppress(OSError):
            for entry in os.scandir(base):
                pid = entry.name.split("-")[2] if entry.name.count("-") >= 3 else ""
                ours = entry.name.startswith(PREFIXES) and pid.isdigit()
                if ours and not os.path.exists(f"/proc/{pid}") and entry.is_dir(follow_symlinks=False):
                    remove_tree(entry.path)
    path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base)
    if owner is not None:
        os.chown(path, *owner)
    return path
