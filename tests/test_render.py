"""Render tests: events in, text out, on a fixed-width, colour-free console."""

from __future__ import annotations

import io

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
    Usage,
)
from swarmchat.render.plain import PlainRenderer
from swarmchat.render.tty import MarkdownBlocks, RichRenderer, make_console
from swarmchat.swarm import parse_swarm
from swarmchat.tools.execute import ExecutePyFile
from swarmchat.tools.files import File
from swarmchat.tools.send_message import send_message_tool

SWARM = parse_swarm(
    "agents:\n  user_proxy:\n    description: p\n    talks_to: [coder, writer]\n"
    "  coder:\n    description: c\n  writer:\n    description: w\n",
    "t.yaml",
)
# Summaries as the tools themselves write them.
SEND = send_message_tool(SWARM.agents["user_proxy"], SWARM)(
    recipient="coder", message="Compute 6*7."
).summary()
WRITE = File(chain_of_thought="", file_name="task.py", body="print(6 * 7)\n").summary()
RUN = ExecutePyFile(file_name="task.py").summary()


def render(events: list[Event], show_code: bool = False) -> str:
    buf = io.StringIO()
    renderer = RichRenderer(make_console(buf, width=60, color=False), SWARM, show_approval_code=show_code)
    for e in events:
        renderer(e)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())


def deltas(agent: str, run: str, depth: int, text: str) -> list[Event]:
    return [
        TextDelta(agent=agent, run_id=run, depth=depth, text=text[i : i + 4]) for i in range(0, len(text), 4)
    ]


def delegation() -> list[Event]:
    p = {"agent": "user_proxy", "run_id": "r0", "depth": 0}
    c = {"agent": "coder", "run_id": "r1", "depth": 1}
    return [
        RunStarted(**p, caller="user", thread_id="t0", model="m"),
        MessageSent(**p, recipient="coder", text="Compute 6*7."),
        ToolCallStarted(**p, call_id="s", name="SendMessage", arguments={"recipient": "coder"}, summary=SEND),
        RunStarted(**c, caller="user_proxy", thread_id="t1", model="m"),
        *deltas("coder", "r1", 1, "Writing it.\nNow."),
        MessageCompleted(**c, text="Writing it.\nNow."),
        ToolCallStarted(
            **c,
            call_id="f",
            name="File",
            arguments={"file_name": "task.py", "body": "print(6 * 7)\n"},
            summary=WRITE,
        ),
        ToolCallFinished(
            **c,
            call_id="f",
            name="File",
            output="Wrote 13 bytes to task.py.",
            ok=True,
            duration_ms=1,
            summary=WRITE,
        ),
        ToolCallStarted(
            **c, call_id="e", name="ExecutePyFile", arguments={"file_name": "task.py"}, summary=RUN
        ),
        ToolCallFinished(
            **c,
            call_id="e",
            name="ExecutePyFile",
            summary=RUN,
            output="exit status 0\n--- stdout ---\n" + "\n".join(str(i) for i in range(12)),
            ok=True,
            duration_ms=30,
        ),
        *deltas("coder", "r1", 1, "42"),
        MessageCompleted(**c, text="42"),
        RunFinished(
            **c, caller="user_proxy", thread_id="t1", status="completed", text="42", usage=Usage(800, 20)
        ),
        ToolCallFinished(
            **p, call_id="s", name="SendMessage", output="42", ok=True, duration_ms=1500, summary=SEND
        ),
        *deltas("user_proxy", "r0", 0, "# Answer\n\nIt is **42**.\n\n```python\nprint(6 * 7)\n```\n"),
        MessageCompleted(**p, text="..."),
        RunFinished(
            **p, caller="user", thread_id="t0", status="completed", text="...", usage=Usage(1200, 34)
        ),
    ]


def test_delegation_tree_render() -> None:
    assert (
        render(delegation())
        == """\
  user_proxy → coder
  Compute 6*7.
  Writing it.
  Now.
  ⚙ coder writes task.py
    print(6 * 7)
    Wrote 13 bytes to task.py.
  ⚙ coder runs task.py
    exit status 0
    --- stdout ---
    0
    1
    2
    3
    4
    5
    … (6 more lines)
  42
  ✓ user_proxy got an answer (1.5 s)
                           Answer

It is 42.

 print(6 * 7)

2,000 tokens in / 54 out · all agents · cost unknown"""
    )


def test_parallel_agents_do_not_interleave() -> None:
    a = {"agent": "coder", "run_id": "ra", "depth": 1}
    b = {"agent": "writer", "run_id": "rb", "depth": 1}
    events: list[Event] = []
    for x, y in zip(
        deltas("coder", "ra", 1, "alpha beta gamma"), deltas("writer", "rb", 1, "one two three"), strict=False
    ):
        events += [x, y]
    events += [
        MessageCompleted(**b, text="one two three"),
        *deltas("coder", "ra", 1, " delta"),
        MessageCompleted(**a, text="alpha beta gamma delta"),
    ]
    # The writer, buffered, prints as a block when its message ends; the coder's line,
    # streamed live, lands whole when it completes: never a mix of the two.
    assert render(events) == "  one two three\n  alpha beta gamma delta"


def test_approval_and_retry_and_failure_lines() -> None:
    c = {"agent": "coder", "run_id": "r1", "depth": 1, "call_id": "e", "tool": "ExecutePyFile"}
    approval = Approval("task.py", preview="print('hi')\n", language="python", sandbox="bwrap")
    out = render(
        [
            ApprovalRequested(**c, approval=approval),
            ApprovalResolved(**c, approval=approval, approved=False, reason="user"),
            Retrying(agent="coder", run_id="r1", depth=1, error="HTTP 429: slow down", attempt=1, delay=2.0),
            RunFinished(
                agent="coder",
                run_id="r1",
                depth=1,
                caller="user_proxy",
                thread_id="t",
                status="incomplete",
                text="",
            ),
        ],
        show_code=True,
    )
    assert (
        out
        == """\
  coder wants to run task.py (sandbox: bwrap):
    print('hi')
    ✗ task.py not run (user)
  ! coder: HTTP 429: slow down; retry 1 in 2.0 s
  coder: run incomplete"""
    )


def test_control_characters_are_made_visible() -> None:
    c = {"agent": "coder", "run_id": "r1", "depth": 1}
    out = render(
        [
            ToolCallFinished(
                **c,
                call_id="x",
                name="ExecutePyFile",
                output="\x1b[2Jcleared\x07",
                ok=True,
                duration_ms=1,
                summary=RUN,
            )
        ]
    )
    assert out == "    \\x1b[2Jcleared\\x07"


def test_markdown_blocks_settle_once_and_respect_fences() -> None:
    md = MarkdownBlocks()
    assert md.feed("para one\n") == []
    assert md.feed("\npara two\n\n```\ncode\n\nmore\n") == ["para one\n", "para two\n"]
    assert md.feed("```\n\ntail") == ["```\ncode\n\nmore\n```\n"]
    assert md.finish() == "tail"


def test_plain_renderer() -> None:
    buf = io.StringIO()
    renderer = PlainRenderer(buf)
    for e in delegation():
        renderer(e)
    assert buf.getvalue().splitlines() == [
        "  user_proxy → coder: Compute 6*7.",
        "  [coder] Writing it.",
        "  Now.",
        '  [coder] File {"file_name": "task.py"}',
        "    ok: Wrote 13 bytes to task.py.",
        '  [coder] ExecutePyFile {"file_name": "task.py"}',
        "    ok: exit status 0",
        "  [coder] 42",
    ]


def test_brief_folds_each_sub_agent_exchange_into_one_line() -> None:
    buf = io.StringIO()
    renderer = RichRenderer(make_console(buf, width=100, color=False), SWARM, brief=True)
    for e in delegation():
        renderer(e)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "  user_proxy → coder · completed · 2 tool calls · 820 tokens: 42"
    assert not any("task.py" in line or "Compute 6*7" in line for line in lines)
    assert "Answer" in buf.getvalue()


def test_images_from_a_run_are_shown_as_file_links() -> None:
    buf = io.StringIO()
    renderer = RichRenderer(make_console(buf, width=100, color=False), SWARM, workspace="/work/ws")
    renderer(
        ToolCallFinished(
            agent="coder",
            run_id="r",
            depth=1,
            call_id="c",
            name="ExecutePyFile",
            output="exit status 0\nFiles created or changed: data.csv, plot.png",
            ok=True,
            duration_ms=5,
            summary=RUN,
        )
    )
    assert buf.getvalue().splitlines()[-1] == "    🖼  /work/ws/plot.png"
    linked = io.StringIO()
    renderer = RichRenderer(make_console(linked, width=100, color=True), SWARM, workspace="/work/ws")
    renderer(
        ToolCallFinished(
            agent="coder",
            run_id="r",
            depth=1,
            call_id="c",
            name="ExecutePyFile",
            output="Files created or changed: plot.png",
            ok=True,
            duration_ms=5,
            summary=RUN,
        )
    )
    assert "\x1b]8;" in linked.getvalue() and "file:///work/ws/plot.png" in linked.getvalue()


def test_markdown_tail_is_bounded() -> None:
    from swarmchat.render.blocks import TAIL_CHARS

    md = MarkdownBlocks()
    md.feed("word " * 10_000 + "\nlast line")
    assert len(md.tail()) <= TAIL_CHARS and md.tail().endswith("last line")


def test_hostile_names_in_headlines_and_notices_are_made_visible() -> None:
    from swarmchat.render.plain import StderrNotices

    c = {"agent": "coder", "run_id": "r1", "depth": 1}
    evil = "\x1b]0;pwned\x07x.py"
    summary = File(chain_of_thought="", file_name=evil, body="").summary()
    out = render([ToolCallStarted(**c, call_id="f", name="File", arguments={}, summary=summary)])
    assert out == "  ⚙ coder writes \\x1b]0;pwned\\x07x.py"
    approval = Approval(evil, sandbox="none")
    buf = io.StringIO()
    notices = StderrNotices(buf)
    notices(ApprovalRequested(**c, call_id="e", tool="ExecutePyFile", approval=approval))
    notices(
        ApprovalResolved(
            **c,
            call_id="e",
            tool="ExecutePyFile",
            approval=approval,
            approved=False,
            reason="non-interactive",
        )
    )
    assert "\x1b" not in buf.getvalue() and buf.getvalue().count("\\x1b]0;pwned\\x07x.py") == 2
