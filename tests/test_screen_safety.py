"""What the user sees is what runs: agent-controlled text on a terminal emulator's screen.

Renderer output (rich with colour on, as on a real terminal) is fed to ``pyte`` and the
assertions are on the screen: a hostile escape sequence shows as text and erases,
overwrites, retitles or reorders nothing. Byte checks cover what pyte does not emulate
(DCS/APC/SOS/PM strings, the alternate screen, concealed text, OSC 52).
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pyte
import pytest

from swarmchat.approval import question
from swarmchat.errors import SwarmchatError
from swarmchat.events import (
    Approval,
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
    ToolSummary,
)
from swarmchat.render.jsonl import JsonlWriter
from swarmchat.render.plain import PlainRenderer, StderrNotices
from swarmchat.render.tty import RichRenderer, make_console, say
from swarmchat.swarm import parse_swarm
from swarmchat.textsafe import json_visible, visible_controls

SWARM = parse_swarm(
    "agents:\n  boss:\n    description: b\n    talks_to: [coder]\n  coder:\n    description: c\n", "t.yaml"
)
C: dict[str, Any] = {"agent": "coder", "run_id": "r1", "depth": 1}
B: dict[str, Any] = {"agent": "boss", "run_id": "r0", "depth": 0}
DANGER = "import os; os.system('rm -rf ~')"
ERASE = "\x1b[1A\x1b[2K\x1b[1G"
# Each hides, moves, retitles, resets or reorders on some terminal when sent raw.
NASTY = {
    "erase line": f"print('ok')\n{ERASE}{DANGER}",
    "cr overwrite": f"{DANGER}\r# harmless comment                        ",
    "backspaces": DANGER + "\b" * len(DANGER) + "print('hello')",
    "osc title bel": "\x1b]0;pwned\x07" + DANGER,
    "osc title st": "\x1b]2;pwned\x1b\\" + DANGER,
    "osc 52 clipboard": "\x1b]52;c;cm0gLXJmIH4=\x07" + DANGER,
    "8-bit csi": "\x9b2J\x9b1;1H" + DANGER,
    "8-bit osc": "\x9d0;pwned\x9c" + DANGER,
    "dcs": "\x1bPq#0;2;0;0;0\x1b\\" + DANGER,
    "apc sos pm": "\x1b_apc\x1b\\\x1bXsos\x1b\\\x1b^pm\x1b\\" + DANGER,
    "alt screen": "\x1b[?1049h" + DANGER + "\x1b[?1049l",
    "conceal": "\x1b[8m" + DANGER + "\x1b[28m",
    "reset": DANGER + "\x1bc",
    "decaln": DANGER + "\x1b#8",
    "save restore": "\x1b7" + DANGER + "\x1b8print('ok')",
    "bidi": "safe\u202e" + DANGER + "\u202c \u2067x\u2069 \u200fy\u061c",
    "invisible": "r\u200bm\u2060 -rf\ufeff\u00ad \U000e0041",
    "lone surrogate": "\udc9b2J" + DANGER,
}
UNSAFE_CHAR = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
RICH_OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b\x07]*\x1b\\")  # colour, file links


def screen(text: str, cols: int = 100, rows: int = 80) -> pyte.Screen:
    """``text`` as a terminal shows it (encoded as Python writes a lone surrogate). Newline
    mode stands in for the tty driver, which turns each newline into CR LF."""
    scr = pyte.Screen(cols, rows)
    scr.set_mode(pyte.modes.LNM)
    pyte.ByteStream(scr).feed(text.encode("utf-8", "surrogateescape"))
    return scr


def shown(scr: pyte.Screen) -> str:
    return "\n".join(line.rstrip() for line in scr.display)


def tty(events: list[Event], width: int = 100, color: bool = True) -> str:
    buf = io.StringIO()
    renderer = RichRenderer(make_console(buf, width=width, color=color), SWARM, show_approval_code=True)
    for e in events:
        renderer(e)
    return buf.getvalue()


def assert_safe(out: str, *expected: str) -> str:
    """No byte rich did not mean to write; each expected text visible on the screen."""
    assert "\x1b" not in RICH_OWN.sub("", out) and not UNSAFE_CHAR.search(RICH_OWN.sub("", out))
    scr = screen(out)
    text = shown(scr)
    assert scr.title == "" and scr.icon_name == ""
    for want in expected:
        assert want in text, f"{want!r} not on screen:\n{text}"
    return text


def approval(subject: str, code: str) -> ApprovalRequested:
    a = Approval(subject, preview=code, language="python", sandbox="bwrap")
    return ApprovalRequested(**C, call_id="e", tool="ExecutePyFile", approval=a)


def test_erased_line_in_approved_code_stays_on_screen() -> None:
    text = assert_safe(tty([approval("task.py", NASTY["erase line"])]), "print('ok')", DANGER)
    lines = text.splitlines()
    assert "coder wants to run task.py (sandbox: bwrap):" in lines[0]
    assert "print('ok')" in lines[1] and "\\x1b[1A\\x1b[2K\\x1b[1G" + DANGER in lines[2]


@pytest.mark.parametrize("color", [True, False])
@pytest.mark.parametrize("name", NASTY)
def test_no_hostile_code_preview_hides_what_runs(name: str, color: bool) -> None:
    """The whole code is on screen, with the sequence that would have hidden part of it.
    (With colour, highlighting alone splits some sequences; without, none is split.)"""
    code = NASTY[name]
    out = tty([approval("task.py", code)], color=color)
    text = assert_safe(out)
    unwrapped = "".join(text.split())  # the code wraps and is indented: compare without spaces
    assert "".join(visible_controls(code).split()) in unwrapped
    for seq in ("\x1b]52", "\x1b]0", "\x1b]2", "\x9d", "\x9b", "\x1bP", "\x1b_", "\x1bc", "\x1b[?1049h"):
        assert seq not in out


def test_crlf_code_is_not_noise_and_a_lone_cr_is_shown() -> None:
    text = assert_safe(tty([approval("t.py", "a = 1\r\nb = 2\r\n")]), "a = 1", "b = 2")
    assert "\\x0d" not in text
    assert "\\x0d# harmless" in assert_safe(tty([approval("t.py", NASTY["cr overwrite"])]), DANGER)


def test_file_names_with_bidi_and_markup_show_as_written() -> None:
    name = "evil\u202egnp.py [bold]x[/bold] [link=file:///etc/passwd]y[/link]"
    summary = ToolSummary(activity=f"writing {name}", headline=f"writes {name}", preview="pass")
    a = Approval(name, preview="pass", sandbox="none")
    events: list[Event] = [
        ToolCallStarted(**C, call_id="f", name="File", arguments={}, summary=summary),
        ApprovalRequested(**C, call_id="e", tool="ExecutePyFile", approval=a),
        ApprovalResolved(**C, call_id="e", tool="ExecutePyFile", approval=a, approved=False, reason="user"),
    ]
    seen = "evil\\u202egnp.py [bold]x[/bold] [link=file:///etc/passwd]y[/link]"
    text = assert_safe(tty(events), f"writes {seen}", f"⚠ {seen} runs UNCONFINED", f"✗ {seen} not run")
    assert text.count(seen) == 4
    assert "\u202e" not in question(a) and "\\u202e" in question(a)


def test_streamed_answer_tool_output_and_errors() -> None:
    answer = "Done \x1b]0;pwned\x07 &#x202e; \x1b[2K\x9b1A ok\r\n\r\nbye\n"
    events: list[Event] = [
        RunStarted(**B, caller="user", thread_id="t0", model="m"),
        *(TextDelta(**B, text=answer[i : i + 3]) for i in range(0, len(answer), 3)),  # splits the escapes
        MessageSent(**B, recipient="coder\x1b[2J", text="go\x1b]52;c;eA==\x07"),
        RunStarted(**C, caller="boss", thread_id="t1", model="m"),
        *(TextDelta(**C, text=c) for c in "sub\r\nline\x1b[1A\r\n"),  # buffered: the boss streams
        MessageCompleted(**C, text=""),
        ToolCallFinished(
            **C,
            call_id="x",
            name="ExecutePyFile",
            output="out\x1b[2K\rhidden\x07",
            ok=True,
            duration_ms=1,
            summary=ToolSummary(activity="", headline="", preview=""),
        ),
        Retrying(**C, error="HTTP 500 \x1b]0;pwned\x07", attempt=1, delay=1.0),
        RunFinished(**C, caller="boss", thread_id="t1", status="failed", text="", error="boom\x1b[1A\x9b2K"),
        MessageCompleted(**B, text=answer),
        RunFinished(**B, caller="user", thread_id="t0", status="completed", text=answer),
    ]
    text = assert_safe(
        tty(events),
        "Done \\x1b]0;pwned\\x07 \\u202e \\x1b[2K\\x9b1A ok",  # &#x202e; decoded by Markdown
        "bye",
        "coder\\x1b[2J",
        "go\\x1b]52;c;eA==\\x07",
        "line\\x1b[1A",
        "out\\x1b[2K\\x0dhidden\\x07",
        "HTTP 500 \\x1b]0;pwned\\x07",
        "boom\\x1b[1A\\x9b2K",
    )
    assert "sub\n" in text and "\\x0d" not in text.split("out")[0]


def test_streamed_sub_agent_lines_keep_crlf_quiet() -> None:
    """A sub-agent streaming alone prints line by line: a CRLF split across deltas is a
    newline, a lone CR and an escape are shown."""
    stream = "one\r\ntwo\x1b[1A\x1b[2K\r\nthree\rX\r\n"
    events: list[Event] = [
        RunStarted(**C, caller="boss", thread_id="t1", model="m"),
        *(TextDelta(**C, text=c) for c in stream),
        MessageCompleted(**C, text=stream),
    ]
    assert_safe(tty(events), "  one\n  two\\x1b[1A\\x1b[2K\n  three\\x0dX\n")


def test_live_region_status_and_unsettled_tail() -> None:
    buf = io.StringIO()
    console = make_console(buf, width=100, color=True)
    renderer = RichRenderer(console, SWARM)
    name = "x\x1b[2K\u202e.py"
    summary = ToolSummary(activity=f"writing {name}", headline="", preview="")
    renderer(RunStarted(**B, caller="user", thread_id="t0", model="m"))
    renderer(RunStarted(**C, caller="boss", thread_id="t1", model="m"))
    renderer(ToolCallStarted(**C, call_id="f", name="File", arguments={}, summary=summary))
    renderer(TextDelta(**B, text="tail \x1b[1A &#x2066; unsettled"))
    console.print(renderer.live_view())
    assert not any(UNSAFE_CHAR.search(line) for _, line in renderer.board.lines())  # for any drawer
    assert_safe(buf.getvalue(), "writing x\\x1b[2K\\u202e.py", "tail \\x1b[1A \\u2066 unsettled")


def test_error_lines_from_cli_report_and_repl(capsys: pytest.CaptureFixture[str]) -> None:
    from swarmchat.cli import report

    report(SwarmchatError("the run ended: \x1b]0;pwned\x07\x1b[1A\x1b[2Kfine", "hint\u202e\x9b2J"))
    err = capsys.readouterr().err
    assert_safe(err, "the run ended: \\x1b]0;pwned\\x07\\x1b[1A\\x1b[2Kfine", "hint\\u202e\\x9b2J")
    buf = io.StringIO()
    say(make_console(buf, width=100, color=True), "error: \x1b]52;c;eA==\x07 [red]x[/red]", "red")
    assert_safe(buf.getvalue(), "error: \\x1b]52;c;eA==\\x07 [red]x[/red]")


def test_plain_log_and_notices_write_no_escape_at_all() -> None:
    buf = io.StringIO()
    plain, notices = PlainRenderer(buf), StderrNotices(buf)
    evil = "\x1b]0;t\x07\x9b2J\u202e" + DANGER
    a = Approval(evil, sandbox="none")
    events: list[Event] = [
        MessageSent(**C, recipient="boss", text=evil),
        MessageCompleted(**C, text=evil),
        ToolCallStarted(**C, call_id="f", name=evil, arguments={"a": evil}, summary=ToolSummary("", "")),
        ToolCallFinished(
            **C, call_id="f", name="F", output=evil, ok=False, duration_ms=1, summary=ToolSummary("", "")
        ),
        Retrying(**C, error=evil, attempt=1, delay=1.0),
        RunFinished(**C, caller="boss", thread_id="t", status="failed", text="", error=evil),
        ApprovalRequested(**C, call_id="e", tool="T", approval=a),
        ApprovalResolved(**C, call_id="e", tool="T", approval=a, approved=False, reason="non-interactive"),
    ]
    for e in events:
        plain(e)
        notices(e)
    out = buf.getvalue()
    assert not UNSAFE_CHAR.search(out)
    assert shown(screen(out)).count(DANGER) == 8


def test_jsonl_is_lossless_and_terminal_safe() -> None:
    buf = io.StringIO()
    evil = "\x1b]0;t\x07\x7f\x9b2J\u202e\U000e0041\udc9b"
    JsonlWriter(buf, "s").write("x", text=evil)
    assert not UNSAFE_CHAR.search(buf.getvalue()) and json.loads(buf.getvalue())["text"] == evil
    assert screen(buf.getvalue()).title == ""


def test_sanitiser_on_bytes() -> None:
    cases = {
        "a\tb\nc": "a\tb\nc",
        "a\r\nb\r\n": "a\nb\n",
        "a\rb\x08\x00\x7f": "a\\x0db\\x08\\x00\\x7f",
        "\x1b[2J\x9b\x85": "\\x1b[2J\\x9b\\x85",
        "\u202a\u202e\u2066\u2069\u200e\u200f\u061c": "\\u202a\\u202e\\u2066\\u2069\\u200e\\u200f\\u061c",
        "\u200b\u200c\u2060\u2064\ufeff\u2028\u2029\u00ad": "\\u200b\\u200c\\u2060\\u2064\\ufeff\\u2028\\u2029\\xad",
        "\U000e0041\udc9b": "\\U000e0041\\udc9b",
        "é 中文 → ✓ 🖼": "é 中文 → ✓ 🖼",
        "👨\u200d👩\u200d👧 a\u200db": "👨\u200d👩\u200d👧 a\\u200db",  # a joiner between emoji spells one
    }
    for raw, safe in cases.items():
        assert visible_controls(raw) == safe
        assert visible_controls(safe) == safe  # sanitising twice changes nothing
    encoded = json.dumps({"t": "\x7f\x9b\u202e\U000e0041"}, ensure_ascii=False)
    assert json_visible(encoded) == '{"t": "\\u007f\\u009b\\u202e\\udb40\\udc41"}'


def test_approval_question_is_shown_visibly() -> None:
    a = Approval("x\x1b[2K\r\u202e.py", verb="run", sandbox="none")
    assert (
        question(a)
        == "Run x\\x1b[2K\\x0d\\u202e.py UNCONFINED (no sandbox)? [y]es / [n]o / [a]lways this session"
    )


def test_prompt_toolkit_approval_prompt_on_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real approval prompt, even when handed an unsanitised question."""
    import asyncio

    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    from swarmchat import prompts

    buf = io.StringIO()
    output = Vt100_Output(buf, lambda: Size(rows=24, columns=100), term="xterm")
    monkeypatch.setattr(prompts, "create_output", lambda stdout=None: output)
    ask = prompts.approval_asker

    async def answer(question: str) -> str:
        return await ask()(question)

    with create_pipe_input() as keys, create_app_session(input=keys, output=output):
        keys.send_text("y\r")
        assert asyncio.run(answer("Run x\x1b]0;pwned\x07\x1b[2K\u202e\x9b1A.py?")) == "y"
    scr = screen(buf.getvalue())
    assert "Run x\\x1b]0;pwned\\x07\\x1b[2K\\u202e\\x9b1A.py? y" in shown(scr) and scr.title == ""


def test_image_links_name_the_file_as_written() -> None:
    buf = io.StringIO()
    renderer = RichRenderer(make_console(buf, width=100, color=True), SWARM, workspace="/ws")
    files = "Files created or changed: a blink.png, \x1b]0;t\x07x.png, [bold]y.png"
    renderer(
        ToolCallFinished(
            **C, call_id="c", name="E", output=files, ok=True, duration_ms=1, summary=ToolSummary("", "")
        )
    )
    assert_safe(buf.getvalue(), "🖼  /ws/a blink.png", "🖼  /ws/\\x1b]0;t\\x07x.png", "🖼  /ws/[bold]y.png")
    assert "\x1b[5m" not in buf.getvalue()  # a word in a name is not a style
