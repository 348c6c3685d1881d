"""One user session: the swarm, the store, the provider client and the runner, wired once.

Configuration problems surface here, before anything slow is imported: the agents file
is validated and the key checked first, and ``openai`` loads only when a turn needs it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from swarmchat.approval import Approver, Asker, Mode
from swarmchat.copies import CopyPool
from swarmchat.environment import (
    Redactor,
    ensure_private_dir,
    load_dotenv_file,
    provider_from_env,
    secret_values,
    user_home,
)
from swarmchat.errors import ConfigError
from swarmchat.events import Event, RunFinished
from swarmchat.pathpolicy import PathPolicy
from swarmchat.store import Store
from swarmchat.swarm import SwarmSpec, load_swarm
from swarmchat.workspace import Workspace

if TYPE_CHECKING:
    from swarmchat.messages import ModelClient
    from swarmchat.runner import Runner
    from swarmchat.sandbox import SandboxMode
    from swarmchat.sandbox.tiers import Sandbox


ColorChoice = Literal["auto", "always", "never"]
COLOR_CHOICES: tuple[ColorChoice, ...] = get_args(ColorChoice)


@dataclass
class Options:
    """Options shared by the REPL and ``ask`` (the CLI declares their flags once)."""

    agents_file: str | None = None
    model: str | None = None
    workspace: str | None = None
    yes: bool = False
    max_turns: int | None = None
    timeout: float = 60.0
    network: bool = False
    sandbox: SandboxMode | None = None
    unsafe_local_exec: bool = False
    color: ColorChoice = "auto"
    brief: bool = False


def resolve_swarm(opts: Options) -> SwarmSpec:
    """The swarm file, validated, with ``--model`` / ``SWARMCHAT_MODEL`` and ``--network``
    applied to every agent."""
    load_dotenv_file()
    swarm = load_swarm(opts.agents_file)
    model = opts.model or os.environ.get("SWARMCHAT_MODEL", "").strip()
    if model:
        swarm = swarm.with_model(model)
    return swarm.with_network() if opts.network else swarm


def make_sandbox(opts: Options, swarm: SwarmSpec, workspace: Path) -> Sandbox:
    """The sandbox a session runs agent code in (``doctor`` reports on the same one).
    Code runs on copies: the real workspace is never bound into it."""
    from swarmchat.sandbox.tiers import Sandbox

    return Sandbox(opts.sandbox or swarm.sandbox, opts.unsafe_local_exec, private=(workspace,))


WRITING_TOOLS = ("File", "ExecutePyFile")


def _check_writable(root: Path, swarm: SwarmSpec) -> None:
    """A swarm that writes files or runs code needs a workspace it can write to: found out
    before the first model call, not as a failed tool call (a swarm without such tools
    works anywhere)."""
    if not any(t in WRITING_TOOLS for agent in swarm.agents.values() for t in agent.tools):
        return
    try:
        read_only = not os.access(root, os.W_OK) or bool(os.statvfs(root).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = True
    if read_only:
        raise ConfigError(
            f"the workspace {root} is read-only, and agents here write files or run code",
            "start swarmchat in a directory you can write to, or pass -w DIR",
        )


class Session:
    """Everything a conversation needs; one per REPL or per ``ask``."""

    def __init__(self, opts: Options, asker: Asker | None = None, client: ModelClient | None = None) -> None:
        self.swarm = resolve_swarm(opts)
        self.provider = provider_from_env()
        policy = PathPolicy.for_session(opts.agents_file, data=user_home())
        self.workspace = Workspace(Path(opts.workspace) if opts.workspace else Path.cwd(), policy)
        _check_writable(self.workspace.root, self.swarm)
        home = ensure_private_dir(user_home())
        self.store = Store(home / "swarmchat.db", Redactor(secret_values(os.environ)))
        self.session_id = self.store.create_session(self.swarm.source, str(self.workspace.root))
        self.sandbox = make_sandbox(opts, self.swarm, self.workspace.root)
        self.copies = CopyPool()  # the workspace copies code runs on, kept between runs
        mode: Mode = "auto" if opts.yes else ("ask" if asker else "deny")
        self.approver = Approver(mode, asker)
        self._client = client
        self._client_lock = threading.Lock()  # the REPL warms the client in a thread
        self._runner: Runner | None = None
        self.opts = opts

    @property
    def client(self) -> ModelClient:
        with self._client_lock:
            if self._client is None:
                from swarmchat.client import OpenAIChatClient  # imports openai: ~1 s

                self._client = OpenAIChatClient(self.provider)
            return self._client

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            # The runner pulls in the tools (instructor, openai): only once a turn starts.
            from swarmchat.runner import Runner, RunOptions

            options = RunOptions(max_turns=self.opts.max_turns, exec_timeout=self.opts.timeout)
            self._runner = Runner(
                self.swarm,
                self.client,
                self.store,
                self.session_id,
                self.workspace,
                self.sandbox,
                self.approver,
                options,
                self.copies,
            )
        return self._runner

    async def turn(self, text: str, emit: Callable[[Event], None], agent: str | None = None) -> RunFinished:
        return await self.runner.ask(text, emit, agent)

    def new_threads(self) -> None:
        """Start a fresh session id: every agent forgets the previous conversation."""
        self.session_id = self.store.create_session(self.swarm.source, str(self.workspace.root))
        self._runner = None

    def set_model(self, model: str) -> None:
        self.swarm = self.swarm.with_model(model)
        self._runner = None

    async def aclose(self) -> None:
        self.copies.close()
        close = getattr(self._client, "aclose", None)
        if close is not None:
            await close()
        self.store.close()
