"""``ExecutePyFile``: run a workspace file in the sandbox, after the user's approval."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import tokenize
from typing import ClassVar

from pydantic import Field, PrivateAttr

from swarmchat.errors import ToolError
from swarmchat.events import Approval, ToolSummary
from swarmchat.sandbox.supervise import ExecResult
from swarmchat.staging import SyncReport
from swarmchat.textsafe import FILES_MARKER, visible_controls
from swarmchat.tools.base import Tool, ToolContext
from swarmchat.tools.files import WORKSPACE_NOTE

CHANGED_SHOWN = 20  # changed files named in the result before "(and N more)"


class ExecutePyFile(Tool):
    """Run a Python file from the workspace with python3 and return its exit status,
    stdout and stderr. Write the file with the File tool first."""

    prompt_note: ClassVar[str] = WORKSPACE_NOTE
    file_name: str = Field(description="Path of the .py file relative to the workspace")
    _path: str = PrivateAttr(default="")  # the checked relative path, set by approval()
    _code: bytes = PrivateAttr(default=b"")  # the bytes the user saw: exactly these run

    def summary(self) -> ToolSummary:
        return ToolSummary(
            activity=f"running {self.file_name}",
            headline=f"runs {self.file_name}",
            brief_arguments={"file_name": self.file_name},
        )

    async def approval(self, ctx: ToolContext) -> Approval:
        """The code itself and where it will run. Refuses, before anyone is asked, a file
        that is missing, a workspace that would expose the home directory, or a machine
        where no sandbox works."""
        self._path, self._code = ctx.workspace.read(self.file_name)
        ctx.workspace.check_writable()
        preview = python_as_read(self._path, self._code)
        executor = await ctx.sandbox.executor()
        if executor.refusal:
            raise ToolError(f"{self._path} was not run: {executor.refusal}")
        return Approval(
            subject=self._path,
            preview=preview,
            language="python",
            sandbox=executor.name,
            network=ctx.scope.agent.network,
        )

    async def run(self, ctx: ToolContext) -> str:
        """Run the approved bytes on a private copy of the workspace; bring back only the
        regular files the run wrote (see staging.py and copies.py)."""
        async with ctx.sandbox.slot():
            executor = await ctx.sandbox.executor()
            with ctx.copies.staged(ctx.workspace, self._path, self._code, executor.run_as) as run:
                result = await executor.run(self._path, run.root, ctx.exec_timeout, ctx.scope.agent.network)
                report = run.sync_back()
                result = _relative(result, str(run.root))
        return format_exec_result(result, ctx.exec_timeout) + format_sync(report)


def _relative(result: ExecResult, root: str) -> ExecResult:
    """Paths in tracebacks and output as the model knows them (workspace-relative), not
    under the run's private copy."""

    def rel(text: str) -> str:
        return text.replace(root + "/", "").replace(root, ".")

    return dataclasses.replace(result, stdout=rel(result.stdout), stderr=rel(result.stderr))


def python_as_read(path: str, code: bytes) -> str:
    """The source as Python will read it, for the approval screen. Python honours a coding
    declaration (``# coding: utf-7`` turns ``+AAo-`` into a line break inside what looks
    like a comment) and treats a lone CR as a line break: so only UTF-8 source is run,
    and line breaks are shown where Python sees them."""
    if b"\x00" in code:  # e.g. a zip appended to the source: Python would run its __main__
        raise ToolError(f"{path} was not run: it holds NUL bytes, so it is not Python source")
    try:
        # CPython ends a line at CR too; tokenize.detect_encoding only at LF: split as
        # Python does, or a coding line after a lone CR goes unseen here and obeyed there.
        lines = code.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        encoding, _ = tokenize.detect_encoding(io.BytesIO(lines).readline)
    except SyntaxError as exc:
        raise ToolError(f"{path} was not run: {exc.msg}") from None
    if encoding not in ("utf-8", "utf-8-sig"):
        raise ToolError(
            f"{path} was not run: it declares the source encoding '{encoding}'; only UTF-8 "
            "source runs, so that what the user approves is what Python reads"
        )
    text = code.decode(encoding, errors="replace")  # utf-8-sig drops a byte-order mark
    return text.replace("\r\n", "\n").replace("\r", "\n")


def format_sync(report: SyncReport) -> str:
    """The files the run changed in the workspace, and what it left that was not kept.
    Names come from agent code: shown on one line each, control characters visible."""
    text = ""
    changed = sorted(report.written)
    if changed:
        shown = ", ".join(_name(n) for n in changed[:CHANGED_SHOWN])
        more = f" (and {len(changed) - CHANGED_SHOWN} more)" if len(changed) > CHANGED_SHOWN else ""
        text += f"\n{FILES_MARKER}{shown}{more}"
    if report.deleted:
        text += f"\n{DELETED_MARKER}" + ", ".join(_name(n) for n in report.deleted[:CHANGED_SHOWN])
    for name, why in report.refused[:CHANGED_SHOWN]:
        text += f"\n{NOT_KEPT_MARKER}{_name(name)}: {_name(why)}"
    if len(report.refused) > CHANGED_SHOWN:
        text += f"\n(and {len(report.refused) - CHANGED_SHOWN} more not kept)"
    return text


def _name(text: str) -> str:
    """One name on one line; quoted when it holds the list's separators (``, `` / ``: ``)."""
    shown = visible_controls(text).replace("\n", "\\n")
    return json.dumps(shown, ensure_ascii=False) if ", " in shown or ": " in shown else shown


def format_exec_result(result: ExecResult, timeout: float) -> str:
    if result.timed_out:
        status = f"timed out after {timeout:g} s; the process and its children were killed"
    elif result.flooded:
        status = "stopped: the program printed too much output; it was killed"
    elif result.stopped:
        status = f"stopped: {result.stopped}; it was killed"
    else:
        status = f"exit status {result.exit_code}"
    parts = [status]
    for label, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if text:
            parts.append(f"--- {label} ---\n{_unforgeable(visible_controls(text).rstrip())}")
    if len(parts) == 1:
        parts.append("(no output)")
    return "\n".join(parts)


def _unforgeable(output: str) -> str:
    """Lines of the program's own output that look like swarmchat's report lines are
    quoted, so code cannot claim files it did not leave (or hide ones it did)."""
    return _MARKER_LINE.sub(lambda m: "> " + m.group(0), output)


DELETED_MARKER = "Deleted: "
NOT_KEPT_MARKER = "Not kept: "
_MARKER_LINE = re.compile(
    "^(?=" + "|".join(re.escape(m) for m in (FILES_MARKER, DELETED_MARKER, NOT_KEPT_MARKER)) + ")", re.M
)
