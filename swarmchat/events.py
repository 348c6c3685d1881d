"""Typed events emitted by the run loop: a closed union, and the words for run states.

The loop never prints: the terminal renderer, the plain log, the JSON writers and the
status board all consume these same small records, which is what keeps each of them
testable. Consumers dispatch with ``match`` and ``assert_never``, so a new or renamed
event fails type checking wherever it is not handled, instead of silently not rendering.
How a tool call reads to a person (:class:`ToolSummary`, :class:`Approval`) is written by
the tool itself and travels on the events: renderers never match tool names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from swarmchat.sandbox import ExecutorKind

RunStatus = Literal[
    "queued", "in_progress", "requires_action", "completed", "failed", "cancelled", "incomplete"
]
"""An Assistants-style run: queued -> in_progress <-> requires_action -> a final status."""

FinalStatus = Literal["completed", "failed", "cancelled", "incomplete"]
"""How a run ended."""

ApprovalReason = Literal["user", "always", "--yes", "non-interactive"]
"""Who decided whether a tool may act."""

ARG_CHARS = 400  # arguments shown in a generic headline before they are cut
BRIEF_CHARS = 80  # a text argument shown in a one-line log before it is cut


@dataclass(frozen=True)
class Usage:
    """Token counts as reported by the provider (zero when it reports none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class ToolSummary:
    """How one tool call reads to a person, in the tool's own words."""

    activity: str  # the live status line: "writing task.py"
    headline: str  # the scrollback line after the agent's name: "writes task.py"
    preview: str = ""  # content worth showing under the headline (the file being written)
    language: str = "text"  # how to highlight the preview
    brief_arguments: dict[str, Any] | str = field(default_factory=dict)  # for one-line logs
    delegates: bool = False  # the call hands work to another agent, whose run shows it

    @classmethod
    def generic(cls, name: str, arguments: dict[str, Any] | str) -> ToolSummary:
        """For a tool that says nothing about itself, or a call that did not validate."""
        shown = json.dumps(arguments, ensure_ascii=False) if isinstance(arguments, dict) else arguments
        if len(shown) > ARG_CHARS:
            shown = shown[:ARG_CHARS] + "…"
        brief = {k: _cut(v) for k, v in arguments.items()} if isinstance(arguments, dict) else _cut(arguments)
        return cls(activity=f"calling {name}", headline=f"calls {name}({shown})", brief_arguments=brief)


def _cut(value: Any) -> Any:
    """Long text cut for a one-line log: a call that did not validate may carry a whole file."""
    return value[:BRIEF_CHARS] + "…" if isinstance(value, str) and len(value) > BRIEF_CHARS else value


@dataclass(frozen=True)
class Approval:
    """What a tool shows the user before it acts, and the words to ask and report with:
    "Run task.py?", "wants to run task.py", "task.py not run", "skipped running task.py"."""

    subject: str  # what it acts on: "task.py"
    verb: str = "run"
    done: str = "run"
    doing: str = "running"
    preview: str = ""  # shown before the question (the code)
    language: str = "text"
    sandbox: ExecutorKind | None = None  # for tools that run code: where it runs
    network: bool = False

    @property
    def unconfined(self) -> bool:
        return self.sandbox == "none"


@dataclass(frozen=True, kw_only=True)
class _RunEvent:
    """Common fields: which agent, on which run, how deep in the delegation chain."""

    agent: str
    run_id: str
    depth: int = 0


@dataclass(frozen=True, kw_only=True)
class RunStarted(_RunEvent):
    caller: str
    thread_id: str
    model: str


@dataclass(frozen=True, kw_only=True)
class TextDelta(_RunEvent):
    text: str


@dataclass(frozen=True, kw_only=True)
class MessageCompleted(_RunEvent):
    """An assistant message finished streaming (it may be followed by tool calls).

    ``usage`` is the run's running total so far; ``text`` may be empty."""

    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, kw_only=True)
class ToolCallStarted(_RunEvent):
    call_id: str
    name: str
    arguments: dict[str, Any] | str  # as sent by the model; the raw text when not a JSON object
    summary: ToolSummary


@dataclass(frozen=True, kw_only=True)
class ToolCallFinished(_RunEvent):
    call_id: str
    name: str
    output: str
    ok: bool
    duration_ms: int
    summary: ToolSummary


@dataclass(frozen=True, kw_only=True)
class MessageSent(_RunEvent):
    """``agent`` sent ``text`` to ``recipient`` with SendMessage."""

    recipient: str
    text: str


@dataclass(frozen=True, kw_only=True)
class ApprovalRequested(_RunEvent):
    """A tool is about to act (emitted for every approval, given in advance or not)."""

    call_id: str
    tool: str
    approval: Approval


@dataclass(frozen=True, kw_only=True)
class ApprovalResolved(_RunEvent):
    call_id: str
    tool: str
    approval: Approval
    approved: bool
    reason: ApprovalReason


@dataclass(frozen=True, kw_only=True)
class Retrying(_RunEvent):
    """A provider call failed in a retryable way; another attempt follows."""

    error: str
    attempt: int
    delay: float


@dataclass(frozen=True, kw_only=True)
class RunFinished(_RunEvent):
    caller: str
    thread_id: str
    status: FinalStatus
    text: str
    usage: Usage = field(default_factory=Usage)
    error: str | None = None


Event = (
    RunStarted
    | TextDelta
    | MessageCompleted
    | ToolCallStarted
    | ToolCallFinished
    | MessageSent
    | ApprovalRequested
    | ApprovalResolved
    | Retrying
    | RunFinished
)
"""Everything the run loop emits."""
