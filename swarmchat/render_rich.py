"""The terminal renderer: the only module that imports rich.

It consumes run-loop events. Sub-agent conversations appear under a ``caller → callee``
header, indented by depth, each agent in its colour; tool calls show their arguments
(code highlighted) and trimmed results; the entry agent's answer is rendered as Markdown
block by block, each settled block printed once (no repainting, so no flicker).
When agents run in parallel, one streams live and the others are buffered and printed
as whole blocks, so their text never interleaves.
"""

from __future__ import annotations

import json
from typing import IO, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.padding import Padding
from rich.text import Text

from swarmchat.config import Swarm
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
from swarmchat.tools import visible_controls

RESULT_LINES = 8
ARG_CHARS = 400
INDENT = 2


def make_console(file: IO[str], width: int | None = None, color: bool | None = None) -> Console:
    """A console for ``file``; ``color=None`` lets rich decide (TTY, NO_COLOR, FORCE_COLOR)."""
    return Console(
        file=file,
        width=width,
        no_color=(color is False) or None,
        force_terminal=True if color else None,
        highlight=False,
        emoji=False,
    )


def trim_lines(text: str, limit: int = RESULT_LINES) -> str:
    lines = text.rstrip().splitlines() or [""]
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join(lines[:limit]) + f"\n… ({len(lines) - limit} more lines)"


class MarkdownBlocks:
    """Splits streamed Markdown into settled blocks (blank line outside a code fence)."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, text: str) -> list[str]:
        self.buffer += text
        blocks: list[str] = []
        in_fence = False
        start = 0
        pos = 0
        lines = self.buffer.split("\n")
        for line in lines[:-1]:  # the last piece is not a finished line yet
            end = pos + len(line) + 1
            if line.lstrip().startswith(("```", "~~~")):
                in_fence = not in_fence
            elif not in_fence and not line.strip() and self.buffer[start:pos].strip():
                blocks.append(self.buffer[start:pos])
                start = end
            pos = end
        self.buffer = self.buffer[start:]
        return blocks

    def finish(self) -> str:
        rest, self.buffer = self.buffer, ""
        return rest


class _Tail:
    """The unsettled end of the answer, parsed only when the live display repaints
    (a few times a second), and cut to its last lines so it never outgrows the screen."""

    def __init__(self, blocks: MarkdownBlocks) -> None:
        self.blocks = blocks

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.markdown import Markdown
        from rich.segment import Segment

        text = visible_controls(self.blocks.buffer)
        if not text.strip():
            return
        lines = console.render_lines(Markdown(text), options, pad=False)
        keep = max(1, console.height - 4)
        for line in lines[-keep:]:
            yield from line
            yield Segment.line()


class RichRenderer:
    """Renders every event of a turn to a rich console."""

    def __init__(self, console: Console, swarm: Swarm, *, show_approval_code: bool = False) -> None:
        self.console = console
        self.swarm = swarm
        self.show_approval_code = show_approval_code
        self._markdown = MarkdownBlocks()
        self._live_owner: str | None = None  # run id whose text streams right now
        self._buffers: dict[str, list[str]] = {}
        self._mid_line = False
        self._resume_prefix = False
        self._blocks_printed = 0
        self._entry_run: str | None = None
        self._live: Any = None

    # helpers -------------------------------------------------------------------------

    def color(self, agent: str) -> str:
        a = self.swarm.agents.get(agent)
        return a.color if a else "white"

    def _break_line(self) -> None:
        if self._mid_line:
            self.console.file.write("\n")
            self._mid_line = False
            self._resume_prefix = True  # the live stream continues on a fresh, indented line

    def _print(self, renderable: Any, depth: int) -> None:
        self._break_line()
        self.console.print(Padding(renderable, (0, 0, 0, INDENT * depth)) if depth else renderable)

    def _line(self, text: str, style: str, depth: int) -> None:
        self._print(Text(text, style=style), depth)

    def _code(self, code: str, language: str, depth: int) -> None:
        from rich.syntax import Syntax

        syntax = Syntax(code.rstrip("\n"), language, theme="monokai", word_wrap=True,
                        background_color="default")  # fmt: skip
        self._print(syntax, depth + 1)

    # events --------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _on_RunStarted(self, e: RunStarted) -> None:
        if e.depth == 0:
            self._entry_run = e.run_id

    def _on_TextDelta(self, e: TextDelta) -> None:
        if e.run_id == self._entry_run:
            for block in self._markdown.feed(e.text):
                self._print_markdown(block)
            self._show_tail()
            return
        if self._live_owner not in (None, e.run_id):
            self._buffers.setdefault(e.run_id, []).append(e.text)
            return
        prefix = " " * (INDENT * e.depth)
        if self._live_owner is None:
            self._break_line()
            self._live_owner = e.run_id
            self._resume_prefix = True
        if self._resume_prefix:
            self.console.print(Text(prefix), end="")
            self._resume_prefix = False
        text = visible_controls(e.text).replace("\n", "\n" + prefix)
        self.console.print(Text(text, style=self.color(e.agent)), end="", soft_wrap=True)
        self._mid_line = not text.endswith("\n" + prefix)

    def _on_MessageCompleted(self, e: MessageCompleted) -> None:
        if e.run_id == self._entry_run:
            self._flush_markdown()
        elif self._live_owner == e.run_id:
            self._break_line()
            self._live_owner = None
        elif e.run_id in self._buffers:
            text = "".join(self._buffers.pop(e.run_id))
            self._line(visible_controls(text).rstrip(), self.color(e.agent), e.depth)

    def _on_MessageSent(self, e: MessageSent) -> None:
        header = Text()
        header.append(f"{e.agent} → ", style=f"bold {self.color(e.agent)}")
        header.append(e.recipient, style=f"bold {self.color(e.recipient)}")
        self._print(header, e.depth + 1)
        self._line(trim_lines(visible_controls(e.text), 20), self.color(e.agent), e.depth + 1)

    def _on_ToolCallStarted(self, e: ToolCallStarted) -> None:
        if e.name == "SendMessage":
            return  # MessageSent shows the message itself
        args = e.arguments
        if isinstance(args, dict) and e.name == "File":
            name = str(args.get("file_name", "?"))
            self._line(f"⚙ {e.agent} writes {name}", "bold " + self.color(e.agent), e.depth)
            language = "python" if name.endswith(".py") else "text"
            self._code(str(args.get("body", "")), language, e.depth)
            return
        if isinstance(args, dict) and e.name == "ExecutePyFile":
            self._line(f"⚙ {e.agent} runs {args.get('file_name', '?')}",
                       "bold " + self.color(e.agent), e.depth)  # fmt: skip
            return
        shown = json.dumps(args, ensure_ascii=False) if isinstance(args, dict) else str(args)
        if len(shown) > ARG_CHARS:
            shown = shown[:ARG_CHARS] + "…"
        self._line(f"⚙ {e.agent} calls {e.name}({visible_controls(shown)})",
                   "bold " + self.color(e.agent), e.depth)  # fmt: skip

    def _on_ToolCallFinished(self, e: ToolCallFinished) -> None:
        if e.name == "SendMessage":
            mark = "✓" if e.ok else "✗"
            self._line(f"{mark} {e.agent} got an answer ({e.duration_ms / 1000:.1f} s)", "dim",
                       e.depth + 1)  # fmt: skip
            return
        style = "dim" if e.ok else "red"
        self._line(trim_lines(visible_controls(e.output)), style, e.depth + 1)

    def _on_ApprovalRequested(self, e: ApprovalRequested) -> None:
        self.close()  # the prompt that follows owns the terminal
        if e.sandbox == "none":
            self._line(f"⚠ {e.file_name} runs UNCONFINED: no sandbox, with your user's full rights",
                       "bold red", e.depth)  # fmt: skip
        if not self.show_approval_code:
            return
        self._line(f"{e.agent} wants to run {e.file_name}:", "bold yellow", e.depth)
        self._code(e.code, "python", e.depth)

    def _on_ApprovalResolved(self, e: ApprovalResolved) -> None:
        if not e.approved:
            self._line(f"✗ {e.file_name} not run ({e.reason})", "yellow", e.depth + 1)

    def _on_Retrying(self, e: Retrying) -> None:
        self._line(f"! {e.agent}: {e.error}; retry {e.attempt} in {e.delay:.1f} s", "yellow", e.depth)
        if e.run_id == self._entry_run:  # the retry streams the answer again from the start
            self.close()
            self._markdown.finish()
        self._buffers.pop(e.run_id, None)

    def _on_RunFinished(self, e: RunFinished) -> None:
        self._buffers.pop(e.run_id, None)
        if self._live_owner == e.run_id:
            self._break_line()
            self._live_owner = None
        if e.status != "completed":
            self._flush_markdown()
            self._line(f"{e.agent}: run {e.status}" + (f": {e.error}" if e.error else ""),
                       "yellow" if e.status != "failed" else "red", e.depth)  # fmt: skip
        if e.depth == 0:
            self._flush_markdown()
            u = e.usage
            self._line(f"{e.agent} · {u.prompt_tokens:,} tokens in / {u.completion_tokens:,} out",
                       "dim", 0)  # fmt: skip

    # markdown ------------------------------------------------------------------------

    def _show_tail(self) -> None:
        """Keep the unfinished block visible in a small live region (terminals only)."""
        if self._live is None and self.console.is_terminal:
            from rich.live import Live

            self._live = Live(_Tail(self._markdown), console=self.console, transient=True,
                              refresh_per_second=8, redirect_stdout=False, redirect_stderr=False)  # fmt: skip
            self._live.start()

    def close(self) -> None:
        """Stop the live region (end of a message, a prompt, an interrupt)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _flush_markdown(self) -> None:
        self.close()
        rest = self._markdown.finish()
        if rest.strip():
            self._print_markdown(rest)
        self._blocks_printed = 0

    def _print_markdown(self, block: str) -> None:
        from rich.markdown import Markdown

        if self._blocks_printed and not block.lstrip().startswith(("```", "~~~")):
            self._break_line()
            self.console.print()  # the blank line a whole-document render puts there
            # (code blocks bring their own padding)
        self._print(Markdown(visible_controls(block)), 0)
        self._blocks_printed += 1
