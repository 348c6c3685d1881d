"""What each running agent is doing, derived from events: the live delegation tree.

Pure state, no terminal: the rich renderer draws one status line per active run from it
(``user_proxy → coder · running task.py · 3.2 s · 1.2k tokens``) and uses it for the
one-line summaries of ``--brief``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import assert_never

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
)
from swarmchat.textsafe import visible_controls


@dataclass
class RunView:
    run_id: str
    agent: str
    caller: str
    depth: int
    started: float = field(default_factory=time.monotonic)
    activity: str = "thinking"
    tokens: int = 0
    tool_calls: int = 0
    open_tools: dict[str, str] = field(default_factory=dict)  # call id -> the tool's activity

    def label(self) -> str:
        return self.agent if self.depth == 0 else f"{self.caller} → {self.agent}"

    def tool_activity(self) -> str:
        """What the open tool calls are doing, in their own words."""
        return ", ".join(self.open_tools.values()) or "thinking"


class Board:
    """Active runs, most recently started last."""

    def __init__(self) -> None:
        self.runs: dict[str, RunView] = {}

    def update(self, e: Event) -> RunView | None:
        """Apply an event; returns the run it finished, if any."""
        if isinstance(e, RunStarted):
            self.runs[e.run_id] = RunView(e.run_id, e.agent, e.caller, e.depth)
            return None
        view = self.runs.get(e.run_id)
        if view is None:
            return None
        match e:
            case TextDelta():
                view.activity = "answering"
            case MessageCompleted():
                view.tokens = e.usage.total_tokens
                view.activity = "thinking"
            case ToolCallStarted():
                view.tool_calls += 1
                view.open_tools[e.call_id] = e.summary.activity
                view.activity = view.tool_activity()
            case ToolCallFinished():
                view.open_tools.pop(e.call_id, None)
                view.activity = view.tool_activity()
            case ApprovalRequested():
                view.activity = f"waiting for approval to {e.approval.verb} {e.approval.subject}"
            case ApprovalResolved():
                view.activity = view.tool_activity() if e.approved else "thinking"
            case Retrying():
                view.activity = f"retrying (attempt {e.attempt + 1})"
            case RunFinished():
                view.tokens = e.usage.total_tokens
                return self.runs.pop(e.run_id)
            case MessageSent():
                pass
            case _:
                assert_never(e)
        return None

    def lines(self, now: float | None = None) -> list[tuple[RunView, str]]:
        """Status lines; safe to call from the live region's refresh thread (it iterates a
        snapshot while the event thread adds and removes runs). The activity is in a tool's
        words, with a file name the agent chose: made visible here, for every drawer."""
        now = time.monotonic() if now is None else now
        return [
            (
                v,
                visible_controls(f"{v.label()} · {v.activity} · {now - v.started:.1f} s")
                + (f" · {human_tokens(v.tokens)} tokens" if v.tokens else ""),
            )
            for v in list(self.runs.values())
        ]


def human_tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)
