"""The run loop: one agent working on one thread until it answers.

Like an Assistants API run, a run moves queued -> in_progress -> requires_action ->
in_progress ... -> completed | failed | cancelled | incomplete. Tool calls of one message
run concurrently and their results return in the original order; ``SendMessage`` runs
the recipient on its own thread with the caller. Everything observable is emitted as an
event; nothing here prints.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from swarmchat.approval import Approver
from swarmchat.errors import ConfigError, ProviderError, SwarmchatError, ToolError
from swarmchat.events import (
    Event,
    MessageCompleted,
    MessageSent,
    Retrying,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
)
from swarmchat.messages import ChatMessage, ChatRequest, ModelClient, ToolCall
from swarmchat.sandbox.tiers import Sandbox
from swarmchat.store import Store
from swarmchat.swarm import AgentSpec, SwarmSpec
from swarmchat.tools import (
    Tool,
    ToolContext,
    decode_arguments,
    parse_arguments,
    tool_specs,
    tools_for,
)
from swarmchat.workspace import Workspace

DEFAULT_MAX_DEPTH = 3
CANCELLED_OUTPUT = "Cancelled: the user interrupted the run before this tool finished."


@dataclass
class RunOptions:
    max_depth: int = DEFAULT_MAX_DEPTH
    max_turns: int | None = None  # overrides every agent's own limit when set
    exec_timeout: float = 60.0


class Runner:
    """Runs agents of a swarm for one session; the caller consumes events via ``emit``."""

    def __init__(
        self,
        swarm: SwarmSpec,
        client: ModelClient,
        store: Store,
        session_id: str,
        workspace: Workspace,
        sandbox: Sandbox,
        approver: Approver,
        emit: Callable[[Event], None],
        options: RunOptions | None = None,
    ) -> None:
        self.swarm = swarm
        self.client = client
        self.store = store
        self.session_id = session_id
        self.workspace = workspace
        self.sandbox = sandbox
        self.approver = approver
        self.emit = emit
        self.options = options or RunOptions()
        self._locks: dict[str, asyncio.Lock] = {}

    async def ask(self, text: str, agent: str | None = None) -> RunFinished:
        """Run ``agent`` (default: the entry agent) on its thread with the user."""
        target = self.swarm.agents[agent or self.swarm.entry]
        return await self._run(target, "user", text, (target.name,), 0)

    async def _run(
        self, agent: AgentSpec, caller: str, message: str, chain: tuple[str, ...], depth: int
    ) -> RunFinished:
        thread_id = self.store.thread_for(self.session_id, caller, agent.name)
        # Only one run at a time per thread: a second message to the same agent waits.
        async with self._locks.setdefault(thread_id, asyncio.Lock()):
            return await self._run_locked(agent, caller, thread_id, message, chain, depth)

    async def _run_locked(
        self, agent: AgentSpec, caller: str, thread_id: str, message: str, chain: tuple[str, ...], depth: int
    ) -> RunFinished:
        run_id = self.store.create_run(thread_id, agent.name, agent.model)
        ids: dict[str, Any] = {"agent": agent.name, "run_id": run_id, "depth": depth}
        self.emit(RunStarted(**ids, caller=caller, thread_id=thread_id, model=agent.model))
        self.store.add_messages(thread_id, caller, [ChatMessage("user", message)])
        self.store.set_run_status(run_id, "in_progress")
        tools = tools_for(agent, self.swarm)
        specs = tool_specs(tools)
        system = ChatMessage("system", system_prompt(agent, self.swarm))
        usage = Usage()
        partial: list[str] = []
        pending: ChatMessage | None = None

        def finish(status: str, text: str, error: str | None = None) -> RunFinished:
            self.store.set_run_status(run_id, status, usage, error)
            event = RunFinished(
                **ids, caller=caller, thread_id=thread_id, status=status, text=text, usage=usage, error=error
            )
            self.emit(event)
            return event

        def on_delta(text: str) -> None:
            partial.append(text)
            self.emit(TextDelta(**ids, text=text))

        def on_retry(error: str, attempt: int, delay: float) -> None:
            partial.clear()
            self.emit(Retrying(**ids, error=error, attempt=attempt, delay=delay))

        max_turns = self.options.max_turns or agent.max_turns
        try:
            for _turn in range(max_turns):
                partial.clear()
                request = ChatRequest(
                    agent.model, [system, *self.store.messages(thread_id)], specs, agent.temperature
                )
                completion = await self.client.complete(request, on_delta, on_retry)
                usage += completion.usage
                self.emit(MessageCompleted(**ids, text=completion.text, usage=usage))
                if not completion.tool_calls:
                    self.store.add_messages(
                        thread_id, agent.name, [ChatMessage("assistant", completion.text)]
                    )
                    return finish("completed", completion.text)
                self.store.set_run_status(run_id, "requires_action", usage)
                pending = ChatMessage("assistant", completion.text, completion.tool_calls)
                outputs = await gather_first_error(
                    [
                        self._call_tool(agent, tools, call, run_id, chain, depth)
                        for call in completion.tool_calls
                    ]
                )
                results = [
                    ChatMessage("tool", out, tool_call_id=call.id)
                    for call, out in zip(completion.tool_calls, outputs, strict=True)
                ]
                self.store.add_messages(thread_id, agent.name, [pending, *results])
                pending = None
                self.store.set_run_status(run_id, "in_progress", usage)
            return finish(
                "incomplete",
                f"{agent.name} stopped after {max_turns} turns without a final answer (turn limit reached).",
            )
        except BaseException as exc:
            self._close_thread(thread_id, agent.name, pending, partial, exc)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                finish("cancelled", "".join(partial))
            else:
                finish("failed", "".join(partial), _error_text(exc))
            raise

    def _close_thread(
        self, thread_id: str, agent: str, pending: ChatMessage | None, partial: list[str], exc: BaseException
    ) -> None:
        """Leave the thread valid for the next run: no tool call without its result."""
        cancelled = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
        note = CANCELLED_OUTPUT if cancelled else f"Failed: {_error_text(exc)}"
        if pending is not None:
            results = [ChatMessage("tool", note, tool_call_id=c.id) for c in pending.tool_calls]
            self.store.add_messages(thread_id, agent, [pending, *results])
        elif partial:
            self.store.add_messages(
                thread_id, agent, [ChatMessage("assistant", "".join(partial) + "\n[interrupted]")]
            )

    async def _call_tool(
        self,
        agent: AgentSpec,
        tools: dict[str, type[Tool]],
        call: ToolCall,
        run_id: str,
        chain: tuple[str, ...],
        depth: int,
    ) -> str:
        ids: dict[str, Any] = {"agent": agent.name, "run_id": run_id, "depth": depth}
        self.emit(
            ToolCallStarted(
                **ids, call_id=call.id, name=call.name, arguments=decode_arguments(call.arguments)
            )
        )
        started = time.monotonic()
        ok = False
        try:
            cls = tools.get(call.name)
            if cls is None:
                raise ToolError(_unknown_tool(call.name, list(tools)))
            tool = parse_arguments(cls, call.arguments)

            async def delegate(recipient: str, message: str) -> str:
                return await self._delegate(agent, recipient, message, run_id, chain, depth)

            ctx = ToolContext(
                agent,
                run_id,
                depth,
                self.workspace,
                self.sandbox,
                self.approver,
                self.options.exec_timeout,
                self.emit,
                delegate,
            )
            output = await tool.run(ctx)
            ok = True
        except ToolError as exc:
            output = f"Error: {exc.message}"
        except (ProviderError, ConfigError):
            raise  # not the model's fault: the whole run stops and the CLI reports it
        except SwarmchatError as exc:
            output = f"Error: {exc.message}"
        except Exception as exc:
            output = f"Error: {call.name} failed with {type(exc).__name__}: {exc}"
        self.emit(
            ToolCallFinished(
                **ids,
                call_id=call.id,
                name=call.name,
                output=output,
                ok=ok,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        )
        return output

    async def _delegate(
        self, caller: AgentSpec, recipient: str, message: str, run_id: str, chain: tuple[str, ...], depth: int
    ) -> str:
        if recipient not in caller.talks_to:
            raise ToolError(f"{caller.name} may not message '{recipient}'")
        if recipient in chain:
            raise ToolError(
                f"{recipient} is already in the current call chain ({' → '.join(chain)}) and is "
                "waiting for this answer; it cannot be messaged now. Finish the task yourself."
            )
        if depth + 1 > self.options.max_depth:
            raise ToolError(
                f"delegation depth limit reached ({self.options.max_depth} levels below the "
                "user); do this task yourself."
            )
        self.emit(
            MessageSent(agent=caller.name, run_id=run_id, depth=depth, recipient=recipient, text=message)
        )
        result = await self._run(
            self.swarm.agents[recipient], caller.name, message, (*chain, recipient), depth + 1
        )
        if result.status == "completed":
            return result.text or f"({recipient} finished without a text answer)"
        return f"{recipient} did not finish: {result.text}"


async def gather_first_error(coros: list[Coroutine[Any, Any, str]]) -> list[str]:
    """Run concurrently, keep order; on failure cancel the rest and raise the first error
    itself (not an ExceptionGroup), so callers handle it like any other."""
    tasks: list[asyncio.Task[str]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as eg:
        raise _first_leaf(eg) from None
    return [t.result() for t in tasks]


def _first_leaf(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _unknown_tool(name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(available) or "none"
    return f"unknown tool '{name}'.{hint} Available tools: {listed}."


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SwarmchatError):
        return exc.message
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return "cancelled"
    return f"{type(exc).__name__}: {exc}"


def system_prompt(agent: AgentSpec, swarm: SwarmSpec) -> str:
    """The agent's instructions plus what it must know about its place in the swarm."""
    parts = [f'You are "{agent.name}", an agent in a team run by swarmchat. {agent.description}']
    if agent.instructions:
        parts.append(agent.instructions)
    if agent.talks_to:
        peers = "\n".join(f"- {n}: {swarm.agents[n].description}" for n in agent.talks_to)
        parts.append(f"You can delegate with the SendMessage tool to:\n{peers}")
    if "File" in agent.tools or "ExecutePyFile" in agent.tools:
        parts.append("Files live in the workspace; always use paths relative to it.")
    return "\n\n".join(parts)
