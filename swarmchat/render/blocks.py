"""Splitting a streamed Markdown answer into settled blocks, in linear time.

A block is settled at a blank line outside a code fence: from then on its rendering
cannot change, so it is printed once into scrollback and never repainted. Each character
is scanned once, however long the answer or its paragraphs grow.
"""

from __future__ import annotations

FENCES = ("```", "~~~")
TAIL_CHARS = 3000  # the live preview of the unsettled tail shows at most this much


class MarkdownBlocks:
    def __init__(self) -> None:
        self.buffer = ""  # the unsettled tail: text after the last settled block
        self._scanned = 0  # offset in buffer of the first line not yet scanned
        self._in_fence = False
        self._has_text = False

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the blocks it settled, in order."""
        self.buffer += text
        blocks: list[str] = []
        start, pos = 0, self._scanned
        while (newline := self.buffer.find("\n", pos)) >= 0:
            stripped = self.buffer[pos:newline].strip()
            if stripped.startswith(FENCES):
                self._in_fence = not self._in_fence
                self._has_text = True
            elif stripped or self._in_fence:
                self._has_text = True
            elif self._has_text:
                blocks.append(self.buffer[start:pos])
                start, self._has_text = newline + 1, False
            else:
                start = newline + 1  # blank lines between blocks
            pos = newline + 1
        if start:
            self.buffer = self.buffer[start:]
        self._scanned = pos - start
        return blocks

    def tail(self) -> str:
        """The unsettled text for a live preview, cut to its last lines when long."""
        if len(self.buffer) <= TAIL_CHARS:
            return self.buffer
        cut = self.buffer.find("\n", len(self.buffer) - TAIL_CHARS)
        return self.buffer[cut + 1 :] if cut >= 0 else self.buffer[-TAIL_CHARS:]

    def finish(self) -> str:
        """Everything not yet settled; the stream starts afresh."""
        rest = self.buffer
        self.__init__()  # type: ignore[misc]
        return rest
