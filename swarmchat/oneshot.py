"""``swarmchat ask``: one prompt, one answer, output shaped for people or for scripts.

stdout carries only the result: the final answer as plain text (or Markdown rendered on
a terminal), one JSON object (``--json``) or a JSON line per event (``--jsonl``).
Activity goes to stderr when stderr is a terminal (or with ``--verbose``); ``--quiet``
silences stderr entirely.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmchat.errors import (
    InterruptedRunError,
    RunFailedError,
    SwarmchatError,
    TurnLimitError,
)
from swarmchat.render import Fanout
from swarmchat.render.jsonl import Collector, JsonlWriter
from swarmchat.render.plain import PlainRenderer, StderrNotices
from swarmchat.session import Options, Session

ERROR_CODES = {
    "ProviderError": "provider_error",
    "AuthError": "auth_error",
    "ConfigError": "config_error",
    "TurnLimitError": "turn_limit",
    "InterruptedRunError": "interrupted",
    "UsageError": "usage_error",
}


@dataclass
class AskOutput:
    format: str = "text"  # text | json | jsonl
    include_partial: bool = False
    verbose: bool = False
    quiet: bool = False
    out: str | None = None


def run_ask(opts: Options, prompt: str, output: AskOutput) -> None:
    interactive = sys.stdin.isatty() and sys.stderr.isatty() and not opts.yes and not output.quiet
    asker = None
    if interactive:
        from swarmchat.repl import approval_asker

        asker = approval_asker()
    session = Session(opts, asker)
    renderer = None if output.quiet else _activity_renderer(opts, session, output, asker is not None)
    collector = Collector()
    jsonl = (
        JsonlWriter(sys.stdout, session.session_id, output.include_partial)
        if output.format == "jsonl"
        else None
    )
    if jsonl is not None:
        jsonl.write(
            "session.started",
            swarm=session.swarm.source,
            entry=session.swarm.entry,
            model=session.swarm.entry_agent.model,
            workspace=str(session.workspace.root),
        )
    rich_shown = renderer is not None and not isinstance(renderer, PlainRenderer)
    notices = None if output.quiet else StderrNotices(sys.stderr, warn_unconfined=not rich_shown)
    emit = Fanout(renderer, collector, jsonl, notices)

    async def go() -> None:
        try:
            await session.turn(prompt, emit)
        finally:
            if renderer is not None and hasattr(renderer, "close"):
                renderer.close()
            await session.aclose()

    error: SwarmchatError | None = None
    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        error = InterruptedRunError("interrupted")
    except SwarmchatError as exc:
        error = exc
    result = collector.result(session.session_id)
    if error is not None:
        result["error"] = error.message
        result["status"] = "cancelled" if isinstance(error, InterruptedRunError) else "failed"
        if jsonl is not None:
            jsonl.write(
                "error",
                code=ERROR_CODES.get(type(error).__name__, "run_failed"),
                message=error.message,
                retryable=False,
                attempt=None,
            )
    _write_result(result, output, rendered=renderer is not None and sys.stdout.isatty())
    if error is None and result["status"] == "incomplete":
        error = TurnLimitError(result["answer"], "raise the limit with --max-turns N")
    elif error is None and result["status"] != "completed":
        error = RunFailedError(f"the run ended as {result['status']}: {result['error']}")
    if error is not None:
        if output.quiet:
            import typer

            raise typer.Exit(error.exit_code)
        raise error


def _write_result(result: dict[str, Any], output: AskOutput, rendered: bool) -> None:
    import json

    completed = result["status"] == "completed"
    if output.format in ("json", "jsonl"):  # the same object ends a --jsonl stream
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    elif completed and not rendered:
        sys.stdout.write(result["answer"].rstrip("\n") + "\n")
    sys.stdout.flush()
    if output.out and completed:
        Path(output.out).write_text(result["answer"].rstrip("\n") + "\n", encoding="utf-8")


def _activity_renderer(opts: Options, session: Session, output: AskOutput, show_code: bool) -> Any:
    from swarmchat.render.tty import RichRenderer, color_enabled, make_console

    def rich(stream: Any) -> Any:
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
