"""``--jsonl`` events and the ``--json`` result (schema: docs/jsonl.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import IO, Any, assert_never

from swarmchat.events import (
    ApprovalRequested,
    ApprovalResolved,
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
from swarmchat.textsafe import json_visible

SCHEMA_VERSION = 1


def dumps(value: Any) -> str:
    """JSON as UTF-8 text. JSON escapes C0 controls only; DEL, C1 (U+009B is a CSI) and bidi
    controls are escaped too, so a person reading ``--jsonl`` on a terminal is not lied to."""
    return json_visible(json.dumps(value, ensure_ascii=False))


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Collector:
    """Gathers what ``--json`` reports: answer, status, usage per agent, tool calls, time."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.usage: dict[str, Usage] = {}
        self.models: dict[str, str] = {}
        self.tool_calls: list[dict[str, Any]] = []
        self._open: dict[str, dict[str, Any]] = {}
        self.final: RunFinished | None = None

    def __call__(self, e: Event) -> None:
        match e:
            case RunStarted():
                self.models[e.agent] = e.model
            case ToolCallStarted():
                entry: dict[str, Any] = {"agent": e.agent, "name": e.name, "arguments": e.arguments}
                self._open[e.call_id + e.run_id] = entry
                self.tool_calls.append(entry)
            case ToolCallFinished():
                entry = self._open.pop(e.call_id + e.run_id, {})
                entry.update(ok=e.ok, duration_ms=e.duration_ms, output=e.output[:2000])
            case RunFinished():
                self.usage[e.agent] = self.usage.get(e.agent, Usage()) + e.usage
                if e.depth == 0:
                    self.final = e
            case (
                TextDelta()
                | MessageCompleted()
                | MessageSent()
                | ApprovalRequested()
                | ApprovalResolved()
                | Retrying()
            ):
                pass
            case _:
                assert_never(e)

    def result(self, session_id: str) -> dict[str, Any]:
        """The ``--json`` object, which is also the final ``result`` line of ``--jsonl``."""
        final = self.final
        total = sum(self.usage.values(), Usage())
        return {
            "v": SCHEMA_VERSION,
            "type": "result",
            "ts": timestamp(),
            "answer": final.text if final else "",
            "status": final.status if final else "failed",
            "error": final.error if final else None,
            "agent": final.agent if final else None,
            "thread_id": final.thread_id if final else None,
            "session_id": session_id,
            "usage": {
                a: {"model": self.models.get(a), **u.as_dict(), "cost": None} for a, u in self.usage.items()
            },
            "cost": None,  # no price table: unknown, never guessed
            "total_usage": total.as_dict(),
            "tool_calls": self.tool_calls,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
        }


class JsonlWriter:
    """``--jsonl``: one JSON object per event (schema: docs/jsonl.md)."""

    def __init__(self, stream: IO[str], session_id: str, include_partial: bool = False) -> None:
        self.stream = stream
        self.session_id = session_id
        self.include_partial = include_partial
        self._callers: dict[str, str] = {}

    def write(self, kind: str, **fields: Any) -> None:
        line = {
            "v": SCHEMA_VERSION,
            "type": kind,
            "ts": timestamp(),
            "session_id": self.session_id,
            **fields,
        }
        self.stream.write(dumps(line) + "\n")
        self.stream.flush()

    def __call__(self, e: Event) -> None:
        if isinstance(e, RunStarted):
            self._callers[e.run_id] = e.caller
        if isinstance(e, TextDelta) and not self.include_partial:
            return
        line = line_for(e, self._callers.get(e.run_id, "user"))
        if line is not None:
            kind, fields = line
            self.write(kind, **fields)


def line_for(e: Event, caller: str) -> tuple[str, dict[str, Any]] | None:
    """The ``--jsonl`` line type and fields for one event (``caller``: whom the event's run
    answers), or None for an event with nothing to report."""
    ids: dict[str, Any] = {"agent": e.agent, "run_id": e.run_id, "depth": e.depth}
    run = {"run_id": e.run_id, "depth": e.depth}  # agent.message names its agent in "from"
    match e:
        case RunStarted():
            return "agent.started", {**ids, "caller": e.caller, "thread_id": e.thread_id, "model": e.model}
        case TextDelta():
            return "message.delta", {**ids, "text": e.text}
        case MessageCompleted():
            return (
                ("agent.message", {"from": e.agent, "to": caller, **run, "text": e.text}) if e.text else None
            )
        case MessageSent():
            return "agent.message", {"from": e.agent, "to": e.recipient, **run, "text": e.text}
        case ToolCallStarted():
            call = {
                "call_id": e.call_id,
                "name": e.name,
                "arguments": e.arguments,
                "activity": e.summary.activity,
            }
            return "tool_call.started", {**ids, **call}
        case ToolCallFinished():
            done = {"ok": e.ok, "output": e.output, "duration_ms": e.duration_ms}
            return "tool_call.completed", {**ids, "call_id": e.call_id, "name": e.name, **done}
        case ApprovalRequested():
            a = e.approval
            asked = {"file_name": a.subject, "sandbox": a.sandbox, "network": a.network}
            return "approval.requested", {**ids, "call_id": e.call_id, "tool": e.tool, **asked}
        case ApprovalResolved():
            answer = {"file_name": e.approval.subject, "approved": e.approved, "reason": e.reason}
            return "approval.resolved", {**ids, "call_id": e.call_id, "tool": e.tool, **answer}
        case Retrying():
            retry = {"code": "provider_retry", "message": e.error, "retryable": True, "attempt": e.attempt}
            return "error", {"agent": e.agent, "run_id": e.run_id, **retry}
        case RunFinished():
            end = {"status": e.status, "usage": e.usage.as_dict(), "cost": None, "error": e.error}
            return "agent.completed", {**ids, **end}
        case _:
            assert_never(e)
