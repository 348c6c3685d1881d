"""The plain-text activity log (``--verbose`` off a terminal) and the stderr notices every
output mode gets."""

from __future__ import annotations

import json
from typing import IO

from swarmchat.events import (
    ApprovalRequested,
    ApprovalResolved,
    Event,
    MessageCompleted,
    MessageSent,
    Retrying,
    RunFinished,
    ToolCallFinished,
    ToolCallStarted,
)
from swarmchat.textsafe import visible_controls


class PlainRenderer:
    """One plain line per step (``--verbose`` when stderr is not a terminal)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def _write(self, depth: int, text: str) -> None:
        pad = "  " * depth
        self.stream.write(pad + visible_controls(text).replace("\n", "\n" + pad) + "\n")
        self.stream.flush()

    def __call__(self, e: Event) -> None:
        if isinstance(e, MessageSent):
            self._write(e.depth + 1, f"{e.agent} → {e.recipient}: {e.text}")
        elif isinstance(e, MessageCompleted) and e.depth > 0 and e.text:
            self._write(e.depth, f"[{e.agent}] {e.text}")
        elif isinstance(e, ToolCallStarted) and e.name != "SendMessage":
            args = e.arguments
            if isinstance(args, dict):
                args = {k: v for k, v in args.items() if k not in ("body", "chain_of_thought")}
            self._write(e.depth, f"[{e.agent}] {e.name} {json.dumps(args, ensure_ascii=False)}")
        elif isinstance(e, ToolCallFinished) and e.name != "SendMessage":
            first = e.output.strip().splitlines()[:1]
            self._write(e.depth + 1, f"{'ok' if e.ok else 'error'}: {first[0] if first else ''}")
        elif isinstance(e, Retrying):
            self._write(e.depth, f"[{e.agent}] retry {e.attempt} in {e.delay:.1f} s: {e.error}")
        elif isinstance(e, RunFinished) and e.status != "completed":
            self._write(e.depth, f"[{e.agent}] run {e.status}{': ' + e.error if e.error else ''}")


class StderrNotices:
    """Lines the user must see even when nothing else is shown: code that was not run, and
    (unless a renderer already says so) code that runs without a sandbox."""

    def __init__(self, stream: IO[str], warn_unconfined: bool = True) -> None:
        self.stream = stream
        self.warn_unconfined = warn_unconfined

    def __call__(self, e: Event) -> None:
        if isinstance(e, ApprovalRequested) and e.sandbox == "none" and self.warn_unconfined:
            self.stream.write(f"swarmchat: warning: {e.file_name} runs UNCONFINED (no sandbox)\n")
            self.stream.flush()
        if isinstance(e, ApprovalResolved) and not e.approved and e.reason == "non-interactive":
            self.stream.write(
                f"swarmchat: skipped running {e.file_name} for {e.agent}: running code needs "
                "approval; pass --yes (-y) to allow it\n"
            )
            self.stream.flush()
