"""``swarmchat ask``: one prompt, one answer, output shaped for people or for scripts.

stdout carries only the result: the final answer as plain text (or Markdown rendered on
a terminal), one JSON object (``--json``) or a JSON line per event (``--jsonl``).
Activity goes to stderr when stderr is a terminal (or with ``--verbose``); ``--quiet``
silences stderr entirely. The run's outcome is returned as an error (or None); the CLI
alone turns it into an exit code.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from swarmchat import lifecycle
from swarmchat.errors import (
    InterruptedRunError,
    RunFailedError,
    SwarmchatError,
    Terminated,
    TurnLimitError,
    UsageError,
)
from swarmchat.render import Fanout, Sink
from swarmchat.render.jsonl import Collector, JsonlWriter, dumps
from swarmchat.render.plain import PlainRenderer, StderrNotices
from swarmchat.session import Options, Session
from swarmchat.textsafe import visible_controls

if TYPE_CHECKING:
    from swarmchat.swarm import SwarmSpec

OutputFormat = Literal["text", "json", "jsonl"]


@dataclass
class AskOutput:
    format: OutputFormat = "text"
    include_partial: bool = False
    verbose: bool = False
    quiet: bool = False
    out: str | None = None


def run_ask(opts: Options, prompt: str, output: AskOutput, agent: str | None = None) -> SwarmchatError | None:
    """Run one turn and print its result. Set-up problems (agents file, key, workspace)
    raise; how the run itself ended is returned: None when it completed. The turn goes to
    ``agent``, or to the one a leading ``@name`` names (as in the REPL), else the entry."""
    interactive = sys.stdin.isatty() and sys.stderr.isatty() and not opts.yes and not output.quiet
    asker = None
    if interactive:
        from swarmchat.prompts import approval_asker

        asker = approval_asker()
    session = Session(opts, asker)
    try:
        agent, prompt = addressee(session.swarm, agent, prompt)
    except UsageError:
        session.store.close()
        raise
    renderer = None if output.quiet else _activity_renderer(opts, session, output, asker is not None)
    collector = Collector()
    jsonl = None
    if output.format == "jsonl":
        jsonl = JsonlWriter(sys.stdout, session.session_id, output.include_partial)
        jsonl.write(
            "session.started",
            swarm=session.swarm.source,
            entry=session.swarm.entry,
            model=session.swarm.entry_agent.model,
            workspace=str(session.workspace.root),
        )
    rich_shown = renderer is not None and not isinstance(renderer, PlainRenderer)
    notices = None if output.quiet else StderrNotices(sys.stderr, warn_unconfined=not rich_shown)
    error = _run(session, prompt, Fanout(renderer, collector, jsonl, notices), renderer, agent)
    result = collector.result(session.session_id)
    if error is not None:
        result["error"] = error.message
        result["status"] = "cancelled" if isinstance(error, InterruptedRunError) else "failed"
        if jsonl is not None:
            jsonl.write("error", code=error.code, message=error.message, retryable=False, attempt=None)
    _write_result(result, output, rendered=renderer is not None and sys.stdout.isatty())
    if error is None and result["status"] == "incomplete":
        return TurnLimitError(result["answer"], "raise the limit with --max-turns N")
    if error is None and result["status"] != "completed":
        return RunFailedError(f"the run ended as {result['status']}: {result['error']}")
    return error


def addressee(swarm: SwarmSpec, agent: str | None, prompt: str) -> tuple[str | None, str]:
    """The agent a turn goes to (``--agent``, or ``@name`` at the start of the prompt) and
    the prompt without that address."""
    if agent is None and prompt.startswith("@"):
        agent, _, prompt = prompt[1:].partition(" ")
        prompt = prompt.strip()
        if not prompt:
            raise UsageError(f"nothing to say to @{agent}", f'swarmchat ask "@{agent} your message"')
    if agent is not None and agent not in swarm.agents:
        close = difflib.get_close_matches(agent, list(swarm.agents), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"no agent named '{agent}'{hint}", "`swarmchat agents` lists them")
    return agent, prompt


def _run(
    session: Session, prompt: str, emit: Fanout, renderer: Any, agent: str | None = None
) -> SwarmchatError | None:
    async def go() -> None:
        try:
            await session.turn(prompt, emit, agent)
        finally:
            if renderer is not None and hasattr(renderer, "close"):
                renderer.close()
            await session.aclose()

    try:
        lifecycle.run(go())
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise
        return InterruptedRunError("interrupted")
    except SwarmchatError as exc:
        return exc
    return None


def _write_result(result: dict[str, Any], output: AskOutput, rendered: bool) -> None:
    completed = result["status"] == "completed"
    if output.format in ("json", "jsonl"):  # the same object ends a --jsonl stream
        sys.stdout.write(dumps(result) + "\n")
    elif completed and not rendered:
        # Piped, the answer is data and passes as written; on a terminal it is displayed.
        answer = visible_controls(result["answer"]) if sys.stdout.isatty() else result["answer"]
        sys.stdout.write(answer.rstrip("\n") + "\n")
    sys.stdout.flush()
    if output.out and completed:
        Path(output.out).write_text(result["answer"].rstrip("\n") + "\n", encoding="utf-8")


def _activity_renderer(opts: Options, session: Session, output: AskOutput, show_code: bool) -> Sink | None:
    from swarmchat.render.tty import RichRenderer, color_enabled, make_console

    def rich(stream: Any) -> Sink:
        console = make_console(stream, color=color_enabled(opts.color, stream))
        return RichRenderer(
            console,
            session.swarm,
            show_approval_code=show_code,
            brief=opts.brief,
            workspace=str(session.workspace.root),
        )

    if sys.stdout.isatty() and output.format == "text":
        return rich(sys.stdout)
    if sys.stderr.isatty():
        return rich(sys.stderr)
    if output.verbose:
        return PlainRenderer(sys.stderr)
    return None
