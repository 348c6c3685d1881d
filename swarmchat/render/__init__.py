"""Everything that turns run-loop events into output, one consumer per module.

``tty`` (the only module that imports rich) draws the terminal; ``plain`` writes the
activity log and the notices every mode gets; ``jsonl`` writes ``--jsonl`` and builds the
``--json`` result; ``board`` and ``blocks`` hold the state the terminal renderer draws
(the live delegation tree, settled Markdown blocks). None of them is imported by the loop.
"""

from __future__ import annotations

from collections.abc import Callable

from swarmchat.events import Event

Sink = Callable[[Event], None]


class Fanout:
    """Delivers each event to every sink, in order."""

    def __init__(self, *sinks: Sink | None) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)
