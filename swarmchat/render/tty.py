"""The terminal renderer: the only module that imports rich.

It consumes run-loop events and prints only whole lines and settled Markdown blocks into
scrollback, each exactly once. On a terminal, a small live region at the bottom (repainted
a few times a second, never taller than the screen) shows the unfinished line or Markdown
block being streamed and one status line per active agent: the live delegation tree.
Sub-agent conversations appear under a ``caller → callee`` header, indented by depth, in
each agent's colour; when agents run in parallel one streams and the others are printed
as whole blocks when their message ends. ``brief`` folds each finished sub-agent exchange
into one summary line.

Agent-controlled text is passed through ``visible_controls`` where it enters (so lines wrap
at their shown width) and again on every segment printed (:class:`Shown`), which also
catches what Markdown makes of character references such as ``&#x202e;``.
"""

from __future__ import annotations

import os
import re
from typing import IO, Any, assert_never

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

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
from swarmchat.render.blocks import MarkdownBlocks
from swarmchat.render.board import Board, RunView, human_tokens
from swarmchat.swarm import SwarmSpec
from swarmchat.textsafe import FILES_MARKER, visible_controls

RESULT_LINES = 8
INDENT = 2
IMAGE_RE = re.compile(r"\.(png|jpe?g|gif|svg|webp)$", re.I)
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def color_enabled(flag: str, stream: IO[str]) -> bool:
    """Colour for one stream: the flag, then NO_COLOR, FORCE_COLOR, TERM=dumb, a TTY."""
    if flag in ("always", "never"):
        return flag == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if any(os.environ.get(v, "0") not in ("", "0") for v in ("FORCE_COLOR", "CLICOLOR_FORCE")):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def make_console(file: IO[str], width: int | None = None, color: bool | None = None) -> Console:
    """A console for ``file``. Colour forced onto a pipe never brings animation with it."""
    tty = file.isatty()
    return Console(
        file=file,
        width=width,
        no_color=color is False,
        force_terminal=True if color and not tty else None,
        force_interactive=None if tty else False,
        highlight=False,
        emoji=False,
    )


class Shown:
    """A renderable whose printed text is display-safe: the last guard before the terminal.
    rich's own control segments (cursor moves of the live region) pass; styles and links
    are rich's to write, not text."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for seg in console.render(self.renderable, options):
            yield seg if seg.control else Segment(visible_controls(seg.text), seg.style)


def say(console: Console, text: str, style: str = "dim") -> None:
    """One notice line outside a turn (the REPL's banner, command answers, errors, the
    stored messages ``/show`` prints)."""
    console.print(Shown(Text(visible_controls(text), style=style)))


def trim_lines(text: str, limit: int = RESULT_LINES) -> str:
    """At most ``limit`` lines. Give it visible text: ``splitlines`` also splits at CR."""
    lines = text.rstrip().splitlines() or [""]
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join(lines[:limit]) + f"\n… ({len(lines) - limit} more lines)"


class _LiveView:
    """The bottom region: the streamed tail, then a status line per active agent."""

    def __init__(self, renderer: RichRenderer) -> None:
        self.r = renderer
        self.frame = 0

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.markdown import Markdown

        r = self.r
        self.frame += 1
        status = [(v, line) for v, line in r.board.lines()[-8:] if not r.hidden(v.run_id) or v.depth == 1]
        if r.owner == r.entry_run and (tail := r.markdown.tail()).strip():
            lines = console.render_lines(Markdown(visible_controls(tail)), options, pad=False)
            keep = max(1, console.height - 2 - len(status))  # never taller than the screen
            for segments in lines[-keep:]:
                yield from segments
                yield Segment.line()
        elif r.owner is not None and r.partial and r.owner in r.board.runs:
            view = r.board.runs[r.owner]
            yield Text(" " * INDENT * view.depth + visible_controls(r.partial), style=r.color(view.agent))
        spin = SPINNER[self.frame % len(SPINNER)]
        for view, label in status:
            yield Text(" " * INDENT * view.depth + f"{spin} {label}", style=f"dim {r.color(view.agent)}")


class RichRenderer:
    """Renders the events of one turn to a rich console."""

    def __init__(
        self,
        console: Console,
        swarm: SwarmSpec,
        *,
        show_approval_code: bool = False,
        brief: bool = False,
        workspace: str | None = None,
    ) -> None:
        self.console = console
        self.swarm = swarm
        self.show_approval_code = show_approval_code
        self.brief = brief
        self.workspace = workspace
        self.board = Board()
        self.markdown = MarkdownBlocks()
        self.owner: str | None = None  # run whose text streams live
        self.partial = ""  # the owner's unfinished line (sub-agents)
        self.entry_run: str | None = None
        self._blocks_printed = 0
        self._turn_usage = Usage()  # every agent's tokens this turn, for the footer
        self._buffers: dict[str, list[str]] = {}
        self._live: Any = None

    # helpers -------------------------------------------------------------------------

    def color(self, agent: str) -> str:
        a = self.swarm.agents.get(agent)
        return a.color if a else "white"

    def hidden(self, run_id: str) -> bool:
        """In brief mode everything below the entry agent folds into summaries."""
        view = self.board.runs.get(run_id)
        return self.brief and view is not None and view.depth > 0

    def _print(self, renderable: Any, depth: int) -> None:
        if depth:
            renderable = Padding(renderable, (0, 0, 0, INDENT * depth), expand=False)
        self.console.print(Shown(renderable))

    def _line(self, text: str, style: str, depth: int) -> None:
        self._print(Text(visible_controls(text), style=style), depth)

    def _code(self, code: str, language: str, depth: int) -> None:
        """Code as it will run: what would move the cursor or hide a line is shown instead."""
        from rich.syntax import Syntax

        syntax = Syntax(
            visible_controls(code).rstrip("\n"),
            language,
            theme="monokai",
            word_wrap=True,
            background_color="default",
        )
        self._print(syntax, depth + 1)

    def live_view(self) -> Shown:
        """What the live region draws, display-safe like everything printed."""
        return Shown(_LiveView(self))

    def _start_live(self) -> None:
        if self._live is None and self.console.is_interactive:
            from rich.live import Live

            self._live = Live(
                self.live_view(),
                console=self.console,
                transient=True,
                refresh_per_second=10,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def close(self) -> None:
        """Stop the live region (end of the turn, a prompt, an interrupt)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    # events --------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        hidden = self.hidden(event.run_id)
        finished = self.board.update(event)
        if isinstance(event, RunFinished):
            self._on_run_finished(event, finished, hidden)
            return
        if hidden and not isinstance(event, RunStarted):
            return  # brief mode: RunFinished prints the exchange's one-line summary
        match event:
            case RunStarted():
                if event.depth == 0:
                    self.entry_run = event.run_id
                    self._start_live()
            case TextDelta():
                self._on_text(event)
            case MessageCompleted():
                self._on_message_completed(event)
            case MessageSent():
                self._on_message_sent(event)
            case ToolCallStarted():
                self._on_tool_started(event)
            case ToolCallFinished():
                self._on_tool_finished(event)
            case ApprovalRequested():
                self._on_approval_requested(event)
            case ApprovalResolved():
                if not event.approved:
                    subject, done = event.approval.subject, event.approval.done
                    self._line(f"✗ {subject} not {done} ({event.reason})", "yellow", event.depth + 1)
                if self.entry_run in self.board.runs:
                    self._start_live()
            case Retrying():
                self._on_retrying(event)
            case _:
                assert_never(event)

    def _on_text(self, e: TextDelta) -> None:
        if self.owner not in (None, e.run_id):
            self._buffers.setdefault(e.run_id, []).append(e.text)
            return
        self.owner = e.run_id
        if e.run_id == self.entry_run:
            for block in self.markdown.feed(e.text):
                self._print_markdown(block)
            return
        self.partial += e.text  # made visible when shown: a CRLF may span two deltas
        if "\n" in self.partial:
            done, self.partial = self.partial.rsplit("\n", 1)
            self._line(done.removesuffix("\r"), self.color(e.agent), e.depth)

    def _on_message_completed(self, e: MessageCompleted) -> None:
        if e.run_id == self.entry_run:
            self._flush_markdown()
        elif self.owner == e.run_id:
            if self.partial:
                self._line(self.partial, self.color(e.agent), e.depth)
        elif e.run_id in self._buffers:
            text = "".join(self._buffers.pop(e.run_id))
            self._line(text.rstrip(), self.color(e.agent), e.depth)
        if self.owner == e.run_id:
            self.owner, self.partial = None, ""

    def _on_message_sent(self, e: MessageSent) -> None:
        if self.brief:
            return
        header = Text()
        header.append(f"{e.agent} → ", style=f"bold {self.color(e.agent)}")
        header.append(visible_controls(e.recipient), style=f"bold {self.color(e.recipient)}")
        self._print(header, e.depth + 1)
        self._line(trim_lines(visible_controls(e.text), 20), self.color(e.agent), e.depth + 1)

    def _on_tool_started(self, e: ToolCallStarted) -> None:
        if e.summary.delegates:
            return  # MessageSent shows the message itself
        self._line(f"⚙ {e.agent} {e.summary.headline}", "bold " + self.color(e.agent), e.depth)
        if e.summary.preview:
            self._code(e.summary.preview, e.summary.language, e.depth)

    def _on_tool_finished(self, e: ToolCallFinished) -> None:
        if e.summary.delegates:
            if not self.brief:
                mark = "✓" if e.ok else "✗"
                took = f"{e.duration_ms / 1000:.1f} s"
                self._line(f"{mark} {e.agent} got an answer ({took})", "dim", e.depth + 1)
            return
        self._line(trim_lines(visible_controls(e.output)), "dim" if e.ok else "red", e.depth + 1)
        for line in e.output.splitlines():
            if line.startswith(FILES_MARKER):
                self._show_images(line[len(FILES_MARKER) :].split(", "), e.depth + 1)

    def _show_images(self, names: list[str], depth: int) -> None:
        for name in names:
            if IMAGE_RE.search(name) and self.workspace:
                path = visible_controls(os.path.join(self.workspace, name))
                link = Style(underline=True, link=f"file://{path}")  # a Style: a name is not parsed
                self._print(Text.assemble("🖼  ", (path, link)), depth)

    def _on_approval_requested(self, e: ApprovalRequested) -> None:
        a = e.approval
        subject = a.subject  # _line makes it visible
        if a.unconfined:
            self._line(
                f"⚠ {subject} runs UNCONFINED: no sandbox, with your user's full rights", "bold red", e.depth
            )
        if not self.show_approval_code:
            return
        self.close()  # the prompt that follows owns the terminal
        extra = " with network access" if a.network else ""
        where = f" (sandbox: {a.sandbox})" if a.sandbox else ""
        self._line(f"{e.agent} wants to {a.verb} {subject}{extra}{where}:", "bold yellow", e.depth)
        if a.preview:
            self._code(a.preview, a.language, e.depth)

    def _on_retrying(self, e: Retrying) -> None:
        self._line(f"! {e.agent}: {e.error}; retry {e.attempt} in {e.delay:.1f} s", "yellow", e.depth)
        if e.run_id == self.entry_run:  # the retry streams the answer again from the start
            self.markdown.finish()
        if self.owner == e.run_id:
            self.owner, self.partial = None, ""
        self._buffers.pop(e.run_id, None)

    def _on_run_finished(self, e: RunFinished, view: RunView | None, hidden: bool) -> None:
        self._turn_usage = self._turn_usage + e.usage
        self._buffers.pop(e.run_id, None)
        if self.owner == e.run_id:
            self.owner, self.partial = None, ""
        if hidden and e.depth == 1 and view is not None:
            first = (visible_controls(e.text).strip().splitlines() or [e.error or ""])[0][:120]
            tokens = human_tokens(e.usage.total_tokens)
            self._line(
                f"{view.label()} · {e.status} · {view.tool_calls} tool calls · {tokens} tokens: {first}",
                self.color(e.agent),
                1,
            )
        elif not hidden and e.status != "completed":
            self._flush_markdown()
            self._line(
                f"{e.agent}: run {e.status}" + (f": {e.error}" if e.error else ""),
                "yellow" if e.status != "failed" else "red",
                e.depth,
            )
        if e.depth == 0:
            self._flush_markdown()
            self.close()
            u = self._turn_usage
            tokens = f"{u.prompt_tokens:,} tokens in / {u.completion_tokens:,} out"
            self._line(f"{tokens} · all agents · cost unknown", "dim", 0)

    # markdown ------------------------------------------------------------------------

    def _flush_markdown(self) -> None:
        rest = self.markdown.finish()
        if rest.strip():
            self._print_markdown(rest)
        self._blocks_printed = 0

    def _print_markdown(self, block: str) -> None:
        from rich.markdown import Markdown

        if self._blocks_printed and not block.lstrip().startswith(("```", "~~~")):
            self.console.print()  # the blank line a whole-document render puts there
            # (code blocks bring their own padding)
        self._print(Markdown(visible_controls(block)), 0)
        self._blocks_printed += 1
