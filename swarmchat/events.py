"""Typed events emitted by the run loop.

The loop never prints: the rich renderer, the plain renderer and the JSON collector all
consume these same small records, which is what keeps each of them testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True, kw_only=True)
class Event:
    """Common fields: which agent, on which run, how deep in the delegation chain."""

    agent: str
    run_id: str
    depth: int = 0


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    caller: str
    thread_id: str
    model: str


@dataclass(frozen=True, kw_only=True)
class TextDelta(Event):
    text: str


@dataclass(frozen=True, kw_only=True)
class MessageCompleted(Event):
    """An assistant message finished streaming (it may be followed by tool calls).

    ``usage`` is the run's running total so far; ``text`` may be empty."""

    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, kw_only=True)
class ToolCallStarted(Event):
    call_id: str
    name: str
    arguments: dict[str, Any] | str


@dataclass(frozen=True, kw_only=True)
class ToolCallFinished(Event):
    call_id: str
    name: str
    output: str
    ok: bool
    duration_ms: int


@dataclass(frozen=True, kw_only=True)
class MessageSent(Event):
    """``agent`` sent ``text`` to ``recipient`` with SendMessage."""

    recipient: str
    text: str


@dataclass(frozen=True, kw_only=True)
class ApprovalRequested(Event):
    """Code is about to run (emitted for every run, approved in advance or not)."""

    file_name: str
    code: str
    sandbox: str = "bwrap"  # the isolation tier, "none" when unconfined
    network: bool = False


@dataclass(frozen=True, kw_only=True)
class ApprovalResolved(Event):
    file_name: str
    approved: bool
    reason: str  # "user", "always", "--yes", "non-interactive"


@dataclass(frozen=True, kw_only=True)
class Retrying(Event):
    """A provider call failed in a retryable way; another attempt follows."""

    error: str
    attempt: int
    delay: float


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    caller: str
    thread_id: str
    status: str  # completed | failed | cancelled | incomplete
    text: str
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
