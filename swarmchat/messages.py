"""Provider-neutral shapes exchanged between the run loop and a model client.

The run loop speaks only these; ``client.py`` translates them to and from the OpenAI wire
format, and tests substitute a scripted model with the same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from swarmchat.events import Usage


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model produced it


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    tools: list[ToolSpec] = field(default_factory=list)
    temperature: float | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish_reason: str


OnDelta = Callable[[str], None]
OnRetry = Callable[[str, int, float], None]


class ModelClient(Protocol):
    """Anything that can stream one chat completion."""

    async def complete(self, request: ChatRequest, on_delta: OnDelta, on_retry: OnRetry) -> Completion: ...
