"""A scripted in-process model for fast run-loop tests (no HTTP)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmchat.approval import Approver, Mode
from swarmchat.events import Event, RunFinished, Usage
from swarmchat.messages import ChatRequest, Completion, OnDelta, OnRetry, ToolCall
from swarmchat.runner import Runner, RunOptions
from swarmchat.sandbox.tiers import Sandbox
from swarmchat.store import Store
from swarmchat.swarm import parse_swarm
from swarmchat.workspace import Workspace

_AGENT = re.compile(r'^You are "([^"]+)"')

Step = Completion | Callable[[ChatRequest], Awaitable[Completion]]


def say(text: str) -> Completion:
    return Completion(text, (), Usage(3, 2), "stop")


def calls(*items: tuple[str, Any], text: str = "") -> Completion:
    """Tool calls; arguments given as dicts are JSON-encoded, strings are sent raw."""
    tcs = tuple(
        ToolCall(f"call_{i}", name, args if isinstance(args, str) else json.dumps(args))
        for i, (name, args) in enumerate(items)
    )
    return Completion(text, tcs, Usage(3, 2), "tool_calls")


@dataclass
class ScriptedModel:
    steps: dict[str, deque[Step]] = field(default_factory=dict)
    requests: list[tuple[str, ChatRequest]] = field(default_factory=list)

    def script(self, agent: str, *steps: Step) -> ScriptedModel:
        self.steps.setdefault(agent, deque()).extend(steps)
        return self

    async def complete(self, request: ChatRequest, on_delta: OnDelta, on_retry: OnRetry) -> Completion:
        match = _AGENT.match(request.messages[0].content)
        agent = match.group(1) if match else "?"
        self.requests.append((agent, request))
        queue = self.steps.get(agent)
        if not queue:
            raise AssertionError(f"no scripted step left for {agent}")
        step = queue.popleft()
        result = step if isinstance(step, Completion) else await step(request)
        for i in range(0, len(result.text), 5):
            on_delta(result.text[i : i + 5])
            await asyncio.sleep(0)
        return result

    def remaining(self) -> int:
        return sum(len(q) for q in self.steps.values())


SWARM = """
model: test-model
agents:
  user_proxy:
    description: Talks with the user.
    talks_to: [coder, writer]
  coder:
    description: Writes and runs code.
    tools: [File, ExecutePyFile]
    talks_to: [helper]
  writer:
    description: Writes prose.
  helper:
    description: Helps the coder.
    talks_to: [user_proxy, deep]
  deep:
    description: Goes deeper.
    talks_to: [deeper]
  deeper:
    description: Deepest.
"""


@dataclass
class Harness:
    runner: Runner
    model: ScriptedModel
    store: Store
    events: list[Event]
    workspace: Path

    async def ask(self, text: str, agent: str | None = None) -> RunFinished:
        return await self.runner.ask(text, self.events.append, agent)


def harness(
    tmp_path: Path,
    model: ScriptedModel,
    *,
    mode: Mode = "auto",
    yaml_text: str = SWARM,
    options: RunOptions | None = None,
) -> Harness:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    swarm = parse_swarm(yaml_text, "test.yaml")
    store = Store(tmp_path / "db.sqlite")
    sid = store.create_session("test.yaml", str(ws))
    runner = Runner(
        swarm,
        model,
        store,
        sid,
        Workspace(ws),
        Sandbox(),
        Approver(mode),
        options or RunOptions(exec_timeout=10),
    )
    return Harness(runner, model, store, [], ws)
