"""The real ``swarmchat`` REPL driven in a pseudo-terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pexpect
import pytest
from clitools import SWARMCHAT
from fakeserver import FakeOpenAI, Reply, call
from proctools import pids_running


def spawn(env: dict[str, str], cwd: Path, *args: str, cpr: bool = False) -> pexpect.spawn:
    """The REPL in a pseudo-terminal; ``cpr=True`` when the test answers cursor-position
    requests itself (prompt_toolkit shows the bottom toolbar only once it knows them)."""
    env = {**env, "TERM": "xterm"}
    if not cpr:
        env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    return pexpect.spawn(
        SWARMCHAT, list(args), env=env, cwd=str(cwd), encoding="utf-8", dimensions=(40, 100), timeout=20
    )


def finish(child: pexpect.spawn) -> int:
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus)


def test_prompt_answer_and_ctrl_d_exits_0(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="The answer is **forty-two**."))
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("meaning of life?\r")
    child.expect("forty-two")
    child.expect("you ›")
    assert finish(child) == 0
    assert fake.requests[0].body["messages"][-1]["content"] == "meaning of life?"


def test_ctrl_c_cancels_turn_and_thread_stays_valid(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="word " * 400, chunk_delay=0.02), Reply(text="second answer"))
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("long please\r")
    child.expect("word")
    started = time.monotonic()
    child.sendintr()
    child.expect("interrupted")
    child.expect("you ›")
    assert time.monotonic() - started < 1.0
    child.send("again\r")
    child.expect("second answer")
    child.expect("you ›")
    assert finish(child) == 0
    roles = [m["role"] for m in fake.requests[1].body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert fake.requests[1].body["messages"][2]["content"].endswith("[interrupted]")


def test_double_ctrl_c_on_empty_prompt_exits(fake: FakeOpenAI, cli_env, workspace) -> None:
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("some text")
    child.sendintr()  # clears the line
    child.sendintr()
    child.expect("press Ctrl-C again")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not fake.requests


def test_history_persists_across_restarts(fake: FakeOpenAI, cli_env, workspace, tmp_path) -> None:
    fake.script("user_proxy", Reply(text="first reply"), Reply(text="second reply"))
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("remember this line\r")
    child.expect("first reply")
    child.expect("you ›")
    assert finish(child) == 0
    history = tmp_path / "home" / "history"
    assert "remember this line" in history.read_text()
    assert history.stat().st_mode & 0o777 == 0o600
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    for _ in range(50):  # prompt_toolkit loads the history file in the background
        child.send("\x1b[A")  # Up arrow recalls the previous session's entry
        if child.expect(["remember this line", pexpect.TIMEOUT], timeout=0.2) == 0:
            break
    else:
        raise AssertionError("Up never recalled the previous session's entry")
    child.send("\r")
    child.expect("second reply")
    child.expect("you ›")
    assert finish(child) == 0
    assert fake.requests[1].body["messages"][-1]["content"] == "remember this line"


def test_approval_prompt_and_slash_commands(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script(
        "user_proxy",
        Reply(tool_calls=[call("SendMessage", recipient="coder", message="run it")]),
        Reply(text="all done"),
    )
    fake.script(
        "coder",
        Reply(
            tool_calls=[
                call(
                    "File",
                    chain_of_thought="",
                    file_name="task.py",
                    body="open('ran.txt', 'w').write('yes')\n",
                )
            ]
        ),
        Reply(tool_calls=[call("ExecutePyFile", file_name="task.py")]),
        Reply(text="ran it"),
    )
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("/help\r")
    child.expect("/new")
    child.send("/agents\r")
    child.expect("└─ coder · gpt-4.1-mini · File, ExecutePyFile")
    child.send("go\r")
    child.expect(r"Run task\.py\? \[y\]es / \[n\]o / \[a\]lways this session")
    child.send("a\r")
    child.expect("all done")
    child.expect("you ›")
    assert (workspace / "ran.txt").read_text() == "yes"
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_multiline_input_with_alt_enter_and_backslash(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="got it"))
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("line one\x1b\r")  # Alt+Enter
    child.send("line two\\\r")  # trailing backslash
    child.send("line three\r")
    child.expect("got it")
    child.expect("you ›")
    assert finish(child) == 0
    assert fake.requests[0].body["messages"][-1]["content"] == "line one\nline two\nline three"


def test_one_shot_ask_in_a_terminal_asks_before_running(fake: FakeOpenAI, cli_env, workspace) -> None:
    (workspace / "agents.yaml").write_text(
        "agents:\n  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n"
    )
    fake.script(
        "coder",
        Reply(
            tool_calls=[call("File", chain_of_thought="", file_name="t.py", body="open('ran.txt', 'w')\n")]
        ),
        Reply(tool_calls=[call("ExecutePyFile", file_name="t.py")]),
        Reply(text="declined, fine"),
    )
    child = spawn(cli_env, workspace, "ask", "go")
    child.expect(r"Run t\.py\?")
    child.send("n\r")
    child.expect("declined, fine")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert not (workspace / "ran.txt").exists()
    assert "declined to run t.py" in fake.requests[2].body["messages"][-1]["content"]


def test_interrupted_ask_exits_130(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="slow " * 400, chunk_delay=0.02))
    proc = subprocess.Popen(
        [SWARMCHAT, "ask", "x"],
        env=cli_env,
        cwd=workspace,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fake.wait_for_chunks(5)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err == "swarmchat: error: interrupted\n"


@pytest.fixture(autouse=True)
def _no_inherited_tty_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    os.environ.pop("LINES", None)


def test_at_agent_talks_to_a_specialist_and_show_prints_its_thread(
    fake: FakeOpenAI, cli_env, workspace
) -> None:
    fake.script("coder", Reply(text="coder here, fixing it"))
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("@coder fix the bug in task.py\r")
    child.expect("coder here, fixing it")
    child.expect("you ›")
    child.send("@nobody hi\r")
    child.expect("no agent named 'nobody'")
    child.send("/show coder\r")
    child.expect("user → coder")
    child.expect("user: fix the bug in task.py")
    child.expect("coder: coder here, fixing it")
    child.expect("you ›")  # Ctrl-D typed before the prompt is back is read as EOF by the tty
    assert finish(child) == 0
    assert fake.for_agent("coder")[0].body["messages"][-1]["content"] == "fix the bug in task.py"
    assert not fake.for_agent("user_proxy")


def test_typing_during_a_turn_becomes_the_next_message(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script(
        "user_proxy", Reply(text="slow " * 60, chunk_delay=0.02), Reply(text="answer to the queued one")
    )
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("first\r")
    child.expect("slow")
    child.send("queued question\r")  # typed while the first answer still streams
    child.expect("answer to the queued one", timeout=30)
    child.expect("you ›")
    assert finish(child) == 0
    assert [r.body["messages"][-1]["content"] for r in fake.requests] == ["first", "queued question"]


def test_tab_completion_toolbar_and_toggles(fake: FakeOpenAI, cli_env, workspace) -> None:
    (workspace / "data_file.csv").write_text("x")
    fake.script("coder", Reply(text="ok"))
    child = spawn(cli_env, workspace, cpr=True)
    child.expect("\x1b\\[6n")  # where is the cursor?
    child.send("\x1b[1;1R")
    child.expect("ask before running")  # the bottom toolbar
    child.send("/ag\t")
    child.expect("/agents")
    child.send("\r")
    child.expect("└─ coder")
    child.send("/yes\r")
    child.expect("code now runs without asking")
    child.expect("\x1b\\[6n")
    child.send("\x1b[1;1R")
    child.expect("auto-approve")
    child.send("@co\t")
    child.expect("@coder")
    child.send(" read data_f\t")
    child.expect("data_file.csv")
    child.send("\r")
    child.expect("ok")
    child.expect("you ›")
    assert finish(child) == 0
    assert fake.requests[0].body["messages"][-1]["content"] == "read data_file.csv"


def test_brief_folds_sub_agent_exchanges(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script(
        "user_proxy",
        Reply(tool_calls=[call("SendMessage", recipient="coder", message="do it")]),
        Reply(text="final answer"),
    )
    fake.script("coder", Reply(text="detailed coder chatter"))
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("/brief\r")
    child.expect("fold into one line")
    child.send("go\r")
    child.expect(r"user_proxy → coder · completed · 0 tool calls · 15 tokens: detailed coder chatter")
    child.expect("final answer")
    child.expect("you ›")
    assert finish(child) == 0


def test_ctrl_g_edits_the_prompt_in_editor(fake: FakeOpenAI, cli_env, workspace, tmp_path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "written in the editor" > "$1"\n')
    editor.chmod(0o755)
    fake.script("user_proxy", Reply(text="got the edited prompt"))
    child = spawn({**cli_env, "EDITOR": str(editor), "VISUAL": str(editor)}, workspace)
    child.expect("you ›")
    child.sendcontrol("g")
    child.expect("written in the editor")  # the editor's text is back in the prompt
    child.send("\r")
    child.expect("got the edited prompt")
    child.expect("you ›")
    assert finish(child) == 0
    assert fake.requests[0].body["messages"][-1]["content"] == "written in the editor"


@pytest.mark.parametrize("approved", ["with -y", "at the prompt"])
def test_ctrl_c_stops_agents_and_running_code_within_a_second(
    fake: FakeOpenAI, cli_env, workspace, approved: str
) -> None:
    marker = f"sleeper_ctrl_c_{approved[-3:]}.py"
    fake.script(
        "user_proxy",
        Reply(text="Delegating.", tool_calls=[call("SendMessage", recipient="coder", message="run")]),
    )
    fake.script(
        "coder",
        Reply(
            tool_calls=[
                call(
                    "File",
                    chain_of_thought="",
                    file_name=marker,
                    body="import subprocess, sys, time\n"
                    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                    "print('started', flush=True)\ntime.sleep(60)\n",
                )
            ]
        ),
        Reply(tool_calls=[call("ExecutePyFile", file_name=marker)]),
    )
    child = spawn(cli_env, workspace, *(["-y"] if approved == "with -y" else []))
    child.expect("you ›")
    child.send("go\r")
    child.expect(f"runs {marker}")
    if approved == "at the prompt":  # prompt_toolkit must leave the REPL's SIGINT handler
        child.expect(r"\[y\]es")
        child.send("y\r")
    deadline = time.monotonic() + 30  # a loaded machine (the suite runs in parallel) starts slowly
    while not pids_running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_running(marker)
    started = time.monotonic()
    child.sendintr()
    child.expect("interrupted")
    child.expect("you ›")
    while pids_running(marker) and time.monotonic() - started < 3:
        time.sleep(0.02)
    assert not pids_running(marker)
    assert time.monotonic() - started < 1.0
    assert finish(child) == 0


def test_bracketed_paste_keeps_newlines(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="pasted ok"))
    child = spawn(cli_env, workspace)
    child.expect("you ›")
    child.send("\x1b[200~first pasted line\nsecond pasted line\x1b[201~")
    child.send("\r")
    child.expect("pasted ok")
    child.expect("you ›")
    assert finish(child) == 0
    assert fake.requests[0].body["messages"][-1]["content"] == "first pasted line\nsecond pasted line"


def test_closing_the_terminal_removes_the_kept_copy(fake: FakeOpenAI, cli_env, workspace, tmp_path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (workspace / "agents.yaml").write_text(
        "entry: coder\nagents:\n  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n"
    )
    fake.script(
        "coder",
        Reply(tool_calls=[call("File", chain_of_thought="", file_name="t.py", body="print('ran')\n")]),
        Reply(tool_calls=[call("ExecutePyFile", file_name="t.py")]),
        Reply(text="all done"),
    )
    child = spawn({**cli_env, "SWARMCHAT_RUN_DIR": str(runs)}, workspace, "--yes")
    child.expect("you ›")
    child.send("go\r")
    child.expect("all done")
    child.expect("you ›")
    kept = list(runs.iterdir())
    assert len(kept) == 1 and (kept[0].stat().st_mode & 0o777) == 0o700  # kept between turns, closed
    child.kill(signal.SIGHUP)
    got = child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=10)
    assert got == 0, child.before[-3000:]
    child.close()
    assert child.exitstatus == 128 + signal.SIGHUP
    assert list(runs.iterdir()) == []
