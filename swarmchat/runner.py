"""The run loop: one agent working on one thread until it answers.

Like an Assistants API run, a run moves in_progress -> requires_action -> in_progress ...
-> completed | failed | cancelled | incomplete. Tool calls of one message run concurrently
and their results return in the original order; ``SendMessage`` runs the recipient on its
own thread with the caller. Everything observable is emitted as an event; nothing here
prints. Every loop is bounded: turns per run, delegation depth, one run per thread.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from swarmchat.approval import Approver
from swarmchat.copies import CopyPool
from swarmchat.errors import ConfigError, ProviderError, SwarmchatError, ToolError
from swarmchat.events import (
    Event,
    FinalStatus,
    MessageCompleted,
    MessageSent,
    Retrying,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolSummary,
    Usage,
)
from swarmchat.messages import ChatMessage, ChatRequest, Completion, ModelClient, ToolCall, ToolSpec
from swarmchat.sandbox.tiers import Sandbox
from swarmchat.scope import RunScope
from swarmchat.store import RunLog, Store
from swarmchat.swarm import AgentSpec, SwarmSpec
from swarmchat.tools.base import Tool, ToolContext, decode_arguments, invoke, parse_arguments, tool_specs
from swarmchat.tools.toolset import tools_for
from swarmchat.workspace import Workspace

DEFAULT_MAX_DEPTH = 3
CANCELLED_OUTPUT = "Cancelled: the user interrupted the run before this tool finished."


@dataclass
class RunOptions:
    max_depth: int = DEFAULT_MAX_DEPTH
    max_turns: int | None = None  # overrides every agent's own limit when set
    exec_timeout: float = 60.0


@dataclass
class _Progress:
    """What a run has so far, for finishing it cleanly whenever it stops."""

    usage: Usage = field(default_factory=Usage)
    partial: list[str] = field(default_factory=list)  # text streamed in the current turn
    pending: ChatMessage | None = None  # tool calls whose results are not recorded yet


class Runner:
    """Runs the agents of a swarm for one session."""

    def __init__(
        self,
        swarm: SwarmSpec,
        client: ModelClient,
        store: Store,
        session_id: str,
        workspace: Workspace,
        sandbox: Sandbox,
        approver: Approver,
        options: RunOptions | None = None,
        copies: CopyPool | None = None,
    ) -> None:
        self.swarm = swarm
        self.client = client
        self.store = store
        self.session_id = session_id
        self.workspace = workspace
        self.sandbox = sandbox
        self.approver = approver
        self.options = options or RunOptions()
        # The session's copies of the workspace (kept between runs); without one, none is kept.
        self.copies = copies or CopyPool(keep=False)
        self._locks: dict[str, asyncio.Lock] = {}

    async def ask(self, text: str, emit: Callable[[Event], None], agent: str | None = None) -> RunFinished:
        """Run ``agent`` (default: the entry agent) on its thread with the user; the turn's
        events go to ``emit``."""
        target = self.swarm.agents[agent or self.swarm.entry]
        return await self._run(RunScope(target, "user", (target.name,), 0, emit), text)

    async def _run(self, scope: RunScope, message: str) -> RunFinished:
        agent = scope.agent
        thread_id = self.store.thread_for(self.session_id, scope.caller, agent.name)
        # Only one run at a time per thread: a second message to the same agent waits.
        async with self._locks.setdefault(thread_id, asyncio.Lock()):
            log = self.store.start_run(thread_id, agent.name, agent.model, scope.caller, message)
            scope = replace(scope, thread_id=thread_id, run_id=log.run_id)
            scope.emit(RunStarted(**scope.ids, caller=scope.caller, thread_id=thread_id, model=agent.model))
            progress = _Progress()
            try:
                return await self._loop(scope, log, progress)
            except BaseException as exc:
                self._stop(scope, log, progress, exc)
                raise

    async def _loop(self, scope: RunScope, log: RunLog, progress: _Progress) -> RunFinished:
        tools = tools_for(scope.agent, self.swarm)
        specs = tool_specs(tools)
        system = ChatMessage("system", system_prompt(scope.agent, tools))
        max_turns = self.options.max_turns or scope.agent.max_turns
        for _turn in range(max_turns):
            completion = await self._complete(scope, log, progress, system, specs)
            answer = ChatMessage("assistant", completion.text, completion.tool_calls)
            if not completion.tool_calls:
                return self._finish(scope, log, progress, "completed", completion.text, [answer])
            log.record(status="requires_action", usage=progress.usage)
            progress.pending = answer
            outputs = await gather_first_error(
                [self._call_tool(scope, tools, c) for c in completion.tool_calls]
            )
            results = [
                ChatMessage("tool", out, tool_call_id=call.id)
                for call, out in zip(completion.tool_calls, outputs, strict=True)
            ]
            log.record([answer, *results], "in_progress", progress.usage)
            progress.pending = None
        text = (
            f"{scope.agent.name} stopped after {max_turns} turns without a final answer (turn limit reached)."
        )
        return self._finish(scope, log, progress, "incomplete", text)

    async def _complete(
        self, scope: RunScope, log: RunLog, progress: _Progress, system: ChatMessage, specs: list[ToolSpec]
    ) -> Completion:
        """One model call, streamed as events; a retry starts the streamed text afresh."""

        def on_delta(text: str) -> None:
            progress.partial.append(text)
            scope.emit(TextDelta(**scope.ids, text=text))

        def on_retry(error: str, attempt: int, delay: float) -> None:
            progress.partial.clear()
            scope.emit(Retrying(**scope.ids, error=error, attempt=attempt, delay=delay))

        progress.partial.clear()
        agent = scope.agent
        request = ChatRequest(agent.model, [system, *log.history], specs, agent.temperature)
        completion = await self.client.complete(request, on_delta, on_retry)
        progress.usage += completion.usage
        scope.emit(MessageCompleted(**scope.ids, text=completion.text, usage=progress.usage))
        return completion

    def _finish(
        self,
        scope: RunScope,
        log: RunLog,
        progress: _Progress,
        status: FinalStatus,
        text: str,
        messages: list[ChatMessage] | None = None,
        error: str | None = None,
    ) -> RunFinished:
        log.record(messages, status, progress.usage, error)
        event = RunFinished(
            **scope.ids,
            caller=scope.caller,
            thread_id=scope.thread_id,
            status=status,
            text=text,
            usage=progress.usage,
            error=error,
        )
        scope.emit(event)
        return event

    def _stop(self, scope: RunScope, log: RunLog, progress: _Progress, exc: BaseException) -> None:
        """Finish a run that an error or a cancel interrupted, leaving its thread valid for
        the next run: no tool call without its result, streamed text kept and marked."""
        cancelled = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
        note = CANCELLED_OUTPUT if cancelled else f"Failed: {_error_text(exc)}"
        closing: list[ChatMessage] = []
        if progress.pending is not None:
            calls = progress.pending.tool_calls
            closing = [progress.pending, *(ChatMessage("tool", note, tool_call_id=c.id) for c in calls)]
        elif progress.partial:
            closing = [ChatMessage("assistant", "".join(progress.partial) + "\n[interrupted]")]
        text = "".join(progress.partial)
        if cancelled:
            self._finish(scope, log, progress, "cancelled", text, closing)
        else:
            self._finish(scope, log, progress, "failed", text, closing, _error_text(exc))

    async def _call_tool(self, scope: RunScope, tools: dict[str, type[Tool]], call: ToolCall) -> str:
        """One tool call, from its started event to its finished one; whatever goes wrong
        that is the model's to fix becomes the output it reads."""
        tool: Tool | None = None
        problem = ""
        try:
            tool = _parse_call(tools, call)
        except ToolError as exc:
            problem = f"Error: {exc.message}"
        summary = _summary(tools, tool, call)
        ids = {**scope.ids, "call_id": call.id, "name": call.name, "summary": summary}
        scope.emit(ToolCallStarted(**ids, arguments=decode_arguments(call.arguments)))
        started = time.monotonic()
        output, ok = (await self._invoke(scope, tool, call.id)) if tool else (problem, False)
        duration_ms = int((time.monotonic() - started) * 1000)
        scope.emit(ToolCallFinished(**ids, output=output, ok=ok, duration_ms=duration_ms))
        return output

    async def _invoke(self, scope: RunScope, tool: Tool, call_id: str) -> tuple[str, bool]:
        async def delegate(recipient: str, message: str) -> str:
            return await self._delegate(scope, recipient, message)

        ctx = ToolContext(
            scope,
            call_id,
            self.workspace,
            self.sandbox,
            self.client,
            self.options.exec_timeout,
            delegate,
            self.copies,
        )
        try:
            return await invoke(tool, ctx, self.approver), True
        except (ProviderError, ConfigError):
            raise  # not the model's fault: the whole run stops and the CLI reports it
        except SwarmchatError as exc:
            return f"Error: {exc.message}", False
        except Exception as exc:
            return f"Error: {tool.tool_name()} failed with {type(exc).__name__}: {exc}", False

    async def _delegate(self, scope: RunScope, recipient: str, message: str) -> str:
        caller = scope.agent
        if recipient not in caller.talks_to:
            raise ToolError(f"{caller.name} may not message '{recipient}'")
        if recipient in scope.chain:
            raise ToolError(
                f"{recipient} is already in the current call chain ({' → '.join(scope.chain)}) and is "
                "waiting for this answer; it cannot be messaged now. Finish the task yourself."
            )
        if scope.depth + 1 > self.options.max_depth:
            raise ToolError(
                f"delegation depth limit reached ({self.options.max_depth} levels below the "
                "user); do this task yourself."
            )
        scope.emit(MessageSent(**scope.ids, recipient=recipient, text=message))
        result = await self._run(scope.delegate_to(self.swarm.agents[recipient]), message)
        if result.status == "completed":
            return result.text or f"({recipient} finished without a text answer)"
        return f"{recipient} did not finish: {result.text}"


def _summary(tools: dict[str, type[Tool]], tool: Tool | None, call: ToolCall) -> ToolSummary:
    """The tool's own words for the call, even when its arguments did not validate (a
    malformed File call still reads "writes t.py"); generic words when it has none."""
    arguments = decode_arguments(call.arguments)
    cls = tools.get(call.name)
    if tool is None and cls is not None and isinstance(arguments, dict):
        tool = cls.model_construct(**arguments)  # unvalidated: only to describe the call
    if tool is not None:
        try:
            summary = tool.summary()
        except Exception:  # missing fields, or a tool's display bug: never stop the run
            summary = None
        words = (summary.activity, summary.headline, summary.preview, summary.language) if summary else ()
        if summary is not None and all(isinstance(w, str) for w in words):
            return summary
    return ToolSummary.generic(call.name, arguments)


def _parse_call(tools: dict[str, type[Tool]], call: ToolCall) -> Tool:
    cls = tools.get(call.name)
    if cls is None:
        raise ToolError(_unknown_tool(call.name, list(tools)))
    return parse_arguments(cls, call.arguments)


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


def system_prompt(agent: AgentSpec, tools: dict[str, type[Tool]]) -> str:
    """The agent's instructions plus what its tools need it to know (the agents it can
    delegate to, that files live in the workspace), each note once."""
    parts = [f'You are "{agent.name}", an agent in a team run by swarmchat. {agent.description}']
    if agent.instructions:
        parts.append(agent.instructions)
    parts += dict.fromkeys(cls.prompt_note for cls in tools.values() if cls.prompt_note)
    return "\n\n".join(parts)
