"""What a tool is, what it may use, and how one call runs: parse, approve, act.

The schema the model sees comes from the tool's pydantic model (instructor's
``OpenAISchema``: field order and descriptions included), and the same model validates
the arguments the model sends back, so a tool's contract lives in one class. Whatever goes
wrong in a call becomes a :class:`ToolError` whose message goes back to the model.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from instructor import OpenAISchema
from pydantic import ConfigDict, ValidationError

from swarmchat.copies import CopyPool
from swarmchat.errors import ToolError
from swarmchat.events import Approval, ApprovalReason, ApprovalRequested, ApprovalResolved, ToolSummary
from swarmchat.messages import ModelClient, ToolSpec
from swarmchat.scope import RunScope

if TYPE_CHECKING:
    from swarmchat.approval import Approver
    from swarmchat.sandbox.tiers import Sandbox
    from swarmchat.workspace import Workspace


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use: its run, the workspace, the sandbox, the model and the swarm."""

    scope: RunScope
    call_id: str
    workspace: Workspace
    sandbox: Sandbox
    client: ModelClient
    exec_timeout: float
    delegate: Callable[[str, str], Awaitable[str]]  # (recipient, message) -> the answer
    copies: CopyPool = field(default_factory=lambda: CopyPool(keep=False))  # the session's


class Tool(OpenAISchema):  # type: ignore[misc]
    """Base class: strict arguments, the words for people, an optional approval, ``run``.

    The class name is the tool's name, in ``agents.yaml`` and for the model; the docstring
    is its description for the model.
    """

    model_config = ConfigDict(extra="forbid")
    prompt_note: ClassVar[str] = ""  # a paragraph for the system prompt of agents that have it

    @classmethod
    def tool_name(cls) -> str:
        return cls.__name__

    def summary(self) -> ToolSummary:
        """How this call reads in the live status and the scrollback."""
        return ToolSummary.generic(self.tool_name(), self.model_dump())

    async def approval(self, ctx: ToolContext) -> Approval | None:
        """What to ask the user before :meth:`run`, or None when no approval is needed.
        May raise :class:`ToolError` to refuse before anyone is asked."""
        return None

    async def run(self, ctx: ToolContext) -> str:
        raise NotImplementedError


async def invoke(tool: Tool, ctx: ToolContext, approver: Approver) -> str:
    """Run one validated call: ask for approval when the tool needs it, then act."""
    approval = await tool.approval(ctx)
    if approval is not None:
        scope, name = ctx.scope, tool.tool_name()
        scope.emit(ApprovalRequested(**scope.ids, call_id=ctx.call_id, tool=name, approval=approval))
        approved, reason = await approver.decide(approval)
        scope.emit(
            ApprovalResolved(
                **scope.ids,
                call_id=ctx.call_id,
                tool=name,
                approval=approval,
                approved=approved,
                reason=reason,
            )
        )
        if not approved:
            raise ToolError(declined(approval, reason))
    return await tool.run(ctx)


def declined(approval: Approval, reason: ApprovalReason) -> str:
    """What the model is told when the user (or a non-interactive session) said no."""
    if reason == "non-interactive":
        return (
            f"{approval.subject} was not {approval.done}: {approval.doing} it needs the user's approval "
            "and this session is non-interactive (the user can allow it with --yes). Tell the user."
        )
    return f"the user declined to {approval.verb} {approval.subject}."


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
