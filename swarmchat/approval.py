"""Who decides whether a tool may act (run code, ...): ``--yes``, the user at a prompt,
or nobody.

Non-interactive sessions never prompt: they deny, and the denial is an event the CLI turns
into one stderr line saying what was skipped and how to allow it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from swarmchat.events import Approval, ApprovalReason
from swarmchat.textsafe import visible_controls

Mode = Literal["auto", "ask", "deny"]
Asker = Callable[[str], Awaitable[str]]  # question -> "y" | "n" | "a"


class Approver:
    """Serialises approval questions (parallel agents must not prompt at once)."""

    def __init__(self, mode: Mode, ask: Asker | None = None) -> None:
        if mode == "ask" and ask is None:
            raise ValueError("ask mode needs an asker")
        self.mode: Mode = mode
        self._ask = ask
        self._lock = asyncio.Lock()

    def auto_approves(self) -> bool:
        return self.mode == "auto"

    async def decide(self, approval: Approval) -> tuple[bool, ApprovalReason]:
        """Whether the tool may act, and who decided."""
        if self.mode == "auto":
            return True, "--yes"
        if self.mode == "deny":
            return False, "non-interactive"
        async with self._lock:
            if self.auto_approves():  # someone answered "always" while we waited
                return True, "always"
            assert self._ask is not None
            answer = await self._ask(question(approval))
            if answer == "a":
                self.mode = "auto"
                return True, "always"
            return answer == "y", "user"


def question(approval: Approval) -> str:
    """``Run task.py UNCONFINED (no sandbox) with network access? [y]es / [n]o / [a]lways``"""
    extra = (" UNCONFINED (no sandbox)" if approval.unconfined else "") + (
        " with network access" if approval.network else ""
    )
    action = approval.verb[:1].upper() + approval.verb[1:]
    # The subject is the agent's (a file name): what is asked about must be what is shown.
    return visible_controls(f"{action} {approval.subject}{extra}? [y]es / [n]o / [a]lways this session")
