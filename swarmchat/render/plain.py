"""The plain-text activity log (``--verbose`` off a terminal) and the stderr notices every
output mode gets."""

from __future__ import annotations

import json
from typing import IO, assert_never

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


class PlainRenderer:
    """One plain line per step (``--verbose`` when stderr is not a terminal)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def _write(self, depth: int, text: str) -> None:
        """Every line passes here, made visible: names, output and errors are the agents'."""
        pad = "  " * depth
        self.stream.write(pad + visible_controls(text).replace("\n", "\n" + pad) + "\n")
        self.stream.flush()

    def __call__(self, e: Event) -> None:
        match e:
            case MessageSent():
                self._write(e.depth + 1, f"{e.agent} → {e.recipient}: {e.text}")
            case MessageCompleted() if e.depth > 0 and e.text:
                self._write(e.depth, f"[{e.agent}] {e.text}")
            case ToolCallStarted() if not e.summary.delegates:
                args = json.dumps(e.summary.brief_arguments, ensure_ascii=False)
                self._write(e.depth, f"[{e.agent}] {e.name} {args}")
            case ToolCallFinished() if not e.summary.delegates:
                first = e.output.strip().splitlines()[:1]
                self._write(e.depth + 1, f"{'ok' if e.ok else 'error'}: {first[0] if first else ''}")
            case Retrying():
                self._write(e.depth, f"[{e.agent}] retry {e.attempt} in {e.delay:.1f} s: {e.error}")
            case RunFinished() if e.status != "completed":
                self._write(e.depth, f"[{e.agent}] run {e.status}{': ' + e.error if e.error else ''}")
            case (
                RunStarted()
                | TextDelta()
                | MessageCompleted()
                | ToolCallStarted()
                | ToolCallFinished()
                | ApprovalRequested()
                | ApprovalResolved()
                | RunFinished()
            ):
                pass  # shown by the lines above, or not part of a plain log
            case _:
                assert_never(e)


class StderrNotices:
    """Lines the user must see even when nothing else is shown: code that was not run, and
    (unless a renderer already says so) code that runs without a sandbox."""

    def __init__(self, stream: IO[str], warn_unconfined: bool = True) -> None:
        self.stream = stream
        self.warn_unconfined = warn_unconfined

    def __call__(self, e: Event) -> None:
        match e:
            case ApprovalRequested() if e.approval.unconfined and self.warn_unconfined:
                self._say(f"warning: {e.approval.subject} runs UNCONFINED (no sandbox)")
            case ApprovalResolved() if not e.approved and e.reason == "non-interactive":
                a = e.approval
                how = "it needs approval; pass --yes (-y) to allow it"
                self._say(f"skipped {a.doing} {a.subject} for {e.agent}: {how}")
            case (
                RunStarted()
                | TextDelta()
                | MessageCompleted()
                | ToolCallStarted()
                | ToolCallFinished()
                | MessageSent()
                | ApprovalRequested()
                | ApprovalResolved()
                | Retrying()
                | RunFinished()
            ):
                pass
            case _:
                assert_never(e)

    def _say(self, line: str) -> None:
        self.stream.write(f"swarmchat: {visible_controls(line)}\n")
        self.stream.flush()
