"""The tools agents call, as instructor ``OpenAISchema`` models with an async ``run()``.

The schema the model sees comes from the pydantic model itself (field order and
descriptions included), and the same model validates the arguments the model sends back,
so a tool's contract lives in one place.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from instructor import OpenAISchema
from pydantic import ConfigDict, Field, ValidationError, create_model

from swarmchat.errors import ToolError
from swarmchat.events import ApprovalRequested, ApprovalResolved, Event
from swarmchat.messages import ToolSpec
from swarmchat.swarm import BUILTIN_TOOLS, AgentSpec, SwarmSpec
from swarmchat.textsafe import FILES_MARKER, visible_controls

if TYPE_CHECKING:
    from swarmchat.approval import Approver
    from swarmchat.sandbox.tiers import Sandbox
    from swarmchat.workspace import Workspace


@dataclass
class ToolContext:
    """What a tool may use: the caller, the workspace, the sandbox and the runner."""

    agent: AgentSpec
    run_id: str
    depth: int
    workspace: Workspace
    sandbox: Sandbox
    approver: Approver
    exec_timeout: float
    emit: Callable[[Event], None]
    delegate: Callable[[str, str], Awaitable[str]]


class Tool(OpenAISchema):  # type: ignore[misc]
    """Base class: strict arguments and an async ``run``."""

    model_config = ConfigDict(extra="forbid")
    summary_field: ClassVar[str] = ""

    async def run(self, ctx: ToolContext) -> str:
        raise NotImplementedError


class File(Tool):
    """Create or replace a file in the workspace. Use it to write Python scripts (and data
    files they need) before running them with ExecutePyFile."""

    summary_field: ClassVar[str] = "file_name"
    chain_of_thought: str = Field(
        description="Think step by step: what must this file contain to do the task correctly?"
    )
    file_name: str = Field(description="Path relative to the workspace, e.g. task.py")
    body: str = Field(description="The complete content of the file")

    async def run(self, ctx: ToolContext) -> str:
        path = ctx.workspace.write(self.file_name, self.body.encode("utf-8"))
        return f"Wrote {len(self.body.encode('utf-8'))} bytes to {path}."


class ExecutePyFile(Tool):
    """Run a Python file from the workspace with python3 and return its exit status,
    stdout and stderr. Write the file with the File tool first."""

    summary_field: ClassVar[str] = "file_name"
    file_name: str = Field(description="Path of the .py file relative to the workspace")

    async def run(self, ctx: ToolContext) -> str:
        rel, data = ctx.workspace.read(self.file_name)
        ctx.workspace.check_can_run_code()
        code = data.decode("utf-8", errors="replace")
        executor = await ctx.sandbox.executor()
        if executor.refusal:  # before anyone is asked
            raise ToolError(f"{rel} was not run: {executor.refusal}")
        network = ctx.agent.network
        ctx.emit(
            ApprovalRequested(
                agent=ctx.agent.name,
                run_id=ctx.run_id,
                depth=ctx.depth,
                file_name=rel,
                code=code,
                sandbox=executor.name,
                network=network,
            )
        )
        approved, reason = await ctx.approver.decide(rel, network, executor.confined)
        ctx.emit(
            ApprovalResolved(
                agent=ctx.agent.name,
                run_id=ctx.run_id,
                depth=ctx.depth,
                file_name=rel,
                approved=approved,
                reason=reason,
            )
        )
        if not approved:
            if reason == "non-interactive":
                raise ToolError(
                    f"{rel} was not run: running code needs the user's approval and this "
                    "session is non-interactive (the user can allow it with --yes). "
                    "Tell the user."
                )
            raise ToolError(f"the user declined to run {rel}.")
        before = ctx.workspace.snapshot()
        result = await executor.run(rel, ctx.workspace.root, ctx.exec_timeout, network)
        after = ctx.workspace.snapshot()
        changed = sorted(n for n, mtime in after.items() if before.get(n) != mtime)
        text = format_exec_result(result, ctx.exec_timeout)
        if changed:
            shown = ", ".join(visible_controls(n) for n in changed[:20])
            more = f" (and {len(changed) - 20} more)" if len(changed) > 20 else ""
            text += f"\n{FILES_MARKER}{shown}{more}"
        return text


def format_exec_result(result: Any, timeout: float) -> str:
    if result.timed_out:
        status = f"timed out after {timeout:g} s; the process and its children were killed"
    elif result.flooded:
        status = "stopped: the program printed too much output; it was killed"
    else:
        status = f"exit status {result.exit_code}"
    parts = [status]
    for label, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if text:
            parts.append(f"--- {label} ---\n{visible_controls(text).rstrip()}")
    if len(parts) == 1:
        parts.append("(no output)")
    return "\n".join(parts)


_BUILTIN: dict[str, type[Tool]] = {"File": File, "ExecutePyFile": ExecutePyFile}
assert tuple(_BUILTIN) == BUILTIN_TOOLS


def send_message_tool(agent: AgentSpec, swarm: SwarmSpec) -> type[Tool]:
    """A ``SendMessage`` whose ``recipient`` is an enum of ``agent.talks_to``."""
    lines = "\n".join(f"- {n}: {swarm.agents[n].description}" for n in agent.talks_to)
    doc = (
        "Send a message to another agent and wait for its answer, which is returned as the "
        "result. Each recipient remembers earlier messages from you. Give complete, "
        f"self-contained instructions. Recipients:\n{lines}"
    )
    recipient_type: Any = Literal[tuple(agent.talks_to)]

    def as_enum(schema: dict[str, Any]) -> None:
        schema.pop("const", None)  # a one-name Literal would otherwise become "const"
        schema["enum"] = list(agent.talks_to)

    cls: type[Tool] = create_model(
        "SendMessage",
        __base__=Tool,
        __doc__=doc,
        recipient=(
            recipient_type,
            Field(description="The agent to send the message to", json_schema_extra=as_enum),
        ),
        message=(str, Field(description="The task or question, with every detail needed")),
    )

    async def run(self: Any, ctx: ToolContext) -> str:
        return await ctx.delegate(self.recipient, self.message)

    cls.run = run  # type: ignore[method-assign]
    cls.summary_field = "recipient"
    return cls


def tools_for(agent: AgentSpec, swarm: SwarmSpec) -> dict[str, type[Tool]]:
    tools = {name: _BUILTIN[name] for name in agent.tools}
    if agent.talks_to:
        tools["SendMessage"] = send_message_tool(agent, swarm)
    return tools


def tool_specs(tools: dict[str, type[Tool]]) -> list[ToolSpec]:
    specs = []
    for name, cls in tools.items():
        schema = cls.openai_schema
        specs.append(ToolSpec(name, schema["description"], schema["parameters"]))
    return specs


def parse_arguments(cls: type[Tool], raw: str) -> Tool:
    """Validate the model's JSON arguments; raise :class:`ToolError` with a fixable message."""
    try:
        data = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"arguments are not valid JSON ({exc.msg} at position {exc.pos}); "
            "send a JSON object matching the tool's schema"
        ) from None
    if not isinstance(data, dict):
        raise ToolError("arguments must be a JSON object")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise ToolError(f"invalid arguments for {cls.__name__}: {problems}") from None


def decode_arguments(raw: str) -> dict[str, Any] | str:
    """Best-effort decoding for display; the raw text when it is not a JSON object."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return raw
    return data if isinstance(data, dict) else raw
