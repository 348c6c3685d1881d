"""Scriptable output: --jsonl against its documented schema, --quiet, --out, --color."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
from clitools import invoke
from fakeserver import FakeOpenAI, Reply, call, last_tool_output

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "events.schema.json").read_text())


def script_delegation(fake: FakeOpenAI) -> None:
    fake.script(
        "user_proxy",
        Reply(fault="429", retry_after="0"),
        Reply(tool_calls=[call("SendMessage", recipient="coder", message="compute")]),
        Reply(text=lambda b: "It is " + last_tool_output(b)),
    )
    fake.script(
        "coder",
        Reply(tool_calls=[call("File", chain_of_thought="", file_name="t.py", body="print(6*7)\n")]),
        Reply(tool_calls=[call("ExecutePyFile", file_name="t.py")]),
        Reply(text="42"),
    )


def lines_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_jsonl_events_validate_and_end_with_the_json_result(fake, cli_env, workspace) -> None:
    script_delegation(fake)
    r = invoke(["ask", "x", "-y", "--jsonl", "--include-partial"], cli_env, workspace)
    assert r.returncode == 0, r.stderr
    events = lines_of(r.stdout)
    for event in events:
        jsonschema.validate(event, SCHEMA)
    types = [e["type"] for e in events]
    assert types[0] == "session.started" and types[-1] == "result"
    for kind in (
        "agent.started",
        "message.delta",
        "agent.message",
        "tool_call.started",
        "tool_call.completed",
        "approval.requested",
        "approval.resolved",
        "agent.completed",
        "error",
    ):
        assert kind in types, kind
    retry = next(e for e in events if e["type"] == "error")
    assert retry["code"] == "provider_retry" and retry["retryable"] and retry["attempt"] == 1
    assert {e["session_id"] for e in events} == {events[0]["session_id"]}
    sent = [e for e in events if e["type"] == "agent.message" and e["from"] == "user_proxy"]
    assert sent[0]["to"] == "coder" and sent[0]["text"] == "compute"
    result = events[-1]
    assert result["answer"] == "It is 42" and result["status"] == "completed"
    # The result line has exactly the shape --json prints.
    fake.requests.clear()
    script_delegation(fake)
    plain = json.loads(invoke(["ask", "x", "-y", "--json"], cli_env, workspace).stdout)
    assert set(plain) == set(result) and plain["type"] == "result"


def test_stream_json_alias_and_no_partial_by_default(fake, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="hello"))
    r = invoke(["ask", "x", "--output-format", "stream-json"], cli_env, workspace)
    events = lines_of(r.stdout)
    assert "message.delta" not in [e["type"] for e in events]
    assert events[-1]["answer"] == "hello"


def test_jsonl_reports_the_final_error(fake, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(fault="401"))
    r = invoke(["ask", "x", "--jsonl"], cli_env, workspace)
    assert r.returncode == 3
    events = lines_of(r.stdout)
    for event in events:
        jsonschema.validate(event, SCHEMA)
    assert events[-2]["type"] == "error" and events[-2]["code"] == "auth_error"
    assert events[-1]["status"] == "failed"


def test_quiet_prints_only_the_answer(fake, cli_env, workspace) -> None:
    (workspace / "agents.yaml").write_text(
        "agents:\n  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n"
    )
    fake.script(
        "coder",
        Reply(tool_calls=[call("File", chain_of_thought="", file_name="t.py", body="1")]),
        Reply(tool_calls=[call("ExecutePyFile", file_name="t.py")]),
        Reply(text="answer"),
    )
    r = invoke(["ask", "x", "-q"], cli_env, workspace)
    assert (r.returncode, r.stdout, r.stderr) == (0, "answer\n", "")  # the skip notice too is silenced
    fake.script("coder", Reply(fault="401"))
    r = invoke(["ask", "x", "-q"], cli_env, workspace)
    assert (r.returncode, r.stdout, r.stderr) == (3, "", "")


def test_out_writes_the_answer_to_a_file(fake, cli_env, workspace, tmp_path) -> None:
    fake.script("user_proxy", Reply(text="# Report\n\nall good"))
    target = tmp_path / "answer.md"
    r = invoke(["ask", "x", "--out", str(target), "--json"], cli_env, workspace)
    assert r.returncode == 0
    assert target.read_text() == "# Report\n\nall good\n"


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("flag", "env", "tty", "expected"),
    [
        ("always", {"NO_COLOR": "1"}, False, True),
        ("never", {"FORCE_COLOR": "1"}, True, False),
        ("auto", {"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
        ("auto", {"FORCE_COLOR": "1"}, False, True),
        ("auto", {"CLICOLOR_FORCE": "1"}, False, True),
        ("auto", {"TERM": "dumb"}, True, False),
        ("auto", {"TERM": "xterm"}, True, True),
        ("auto", {"TERM": "xterm"}, False, False),
    ],
)
def test_colour_decision(monkeypatch: pytest.MonkeyPatch, flag, env, tty, expected) -> None:
    from swarmchat.render.tty import color_enabled

    for name in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert color_enabled(flag, _Stream(tty)) is expected


@pytest.mark.parametrize(
    ("args", "env", "coloured"),
    [
        ([], {}, True),
        (["--color", "never"], {}, False),
        ([], {"NO_COLOR": "1"}, False),
    ],
)
def test_colour_in_a_terminal(fake, cli_env, workspace, args, env, coloured) -> None:
    import pexpect
    from clitools import SWARMCHAT

    fake.script("user_proxy", Reply(text="**bold** hi"))
    base = {k: v for k, v in cli_env.items() if k != "NO_COLOR"}
    child = pexpect.spawn(
        SWARMCHAT,
        ["ask", "x", *args],
        env={**base, "TERM": "xterm", **env},
        cwd=str(workspace),
        encoding="utf-8",
        timeout=20,
    )
    child.expect(pexpect.EOF)
    out = child.before
    assert "hi" in out
    assert bool(re.search(r"\x1b\[[0-9;]*(3[0-9]|9[0-7]|38;5;\d+)m", out)) is coloured


def test_usage_errors_for_output_flags(cli_env, workspace) -> None:
    for args in (
        ["ask", "x", "--output-format", "yaml"],
        ["ask", "x", "--include-partial"],
        ["ask", "x", "--color", "sometimes"],
    ):
        r = invoke(args, cli_env, workspace)
        assert r.returncode == 2, args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "--jsonl"], "choose one output format"),
        (["--json", "--output-format", "text"], "choose one output format"),
        (["--jsonl", "--output-format", "json"], "choose one output format"),
        (["-q", "--verbose"], "--quiet and --verbose cannot be used together"),
        (["--out", "."], "is a directory"),
        (["--out", "missing/answer.txt"], "does not exist"),
    ],
)
def test_bad_flag_combinations_fail_before_any_model_call(
    fake: FakeOpenAI, cli_env, workspace, args, message
) -> None:
    r = invoke(["ask", "x", *args], cli_env, workspace)
    assert r.returncode == 2 and message in r.stderr and "hint:" in r.stderr, r.stderr
    assert fake.requests == []


def test_the_same_format_given_twice_is_fine(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="ok"))
    r = invoke(["ask", "x", "--json", "--output-format", "json"], cli_env, workspace)
    assert r.returncode == 0 and json.loads(r.stdout)["answer"] == "ok"
