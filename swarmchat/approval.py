"""Who decides whether agent code may run: ``--yes``, the user at a prompt, or nobody.

Non-interactive sessions never prompt: they deny, and the denial is an event the CLI turns
into one stderr line saying what was skipped and how to allow it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

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

    async def decide(self, file_name: str, network: bool = False, confined: bool = True) -> tuple[bool, str]:
        """Return ``(approved, reason)``; reason is ``--yes``, ``always``, ``user`` or
        ``non-interactive``."""
        if self.mode == "auto":
            return True, "--yes"
        if self.mode == "deny":
            return False, "non-interactive"
        async with self._lock:
            if self.auto_approves():  # someone answered "always" while we waited
                return True, "always"
            assert self._ask is not None
            extra = (" UNCONFINED (no sandbox)" if not confined else "") + (
                " with network access" if network else ""
            )
            answer = await self._ask(f"Run {file_name}{extra}? [y]es / [n]o / [a]lways this session")
            if answer == "a":
                self.mode = "auto"
                return True, "always"
            return answer == "y", "user"
