"""End to end: the installed ``swarmchat`` command as a subprocess against the fake server."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import SWARMCHAT, invoke, run_cli
from fakeserver import FakeOpenAI, Reply, call, last_tool_output

import swarmchat

KEY = "sk-test-SECRET-0123456789"

DATE_SCRIPT = "import datetime\nprint(datetime.date.today().isoformat())\n"


def script_date_flow(fake: FakeOpenAI) -> None:
    fake.script(
        "user_proxy",
        Reply(
            tool_calls=[call("SendMessage", recipient="coder", message="Print today's date in ISO format.")]
        ),
        Reply(text=lambda body: f"Today is {last_tool_output(body)}."),
    )
    fake.script(
        "coder",
        Reply(
            text="I'll write a script.",
            tool_calls=[call("File", chain_of_thought="use datetime", file_name="task.py", body=DATE_SCRIPT)],
        ),
        Reply(tool_calls=[call("ExecutePyFile", file_name="task.py")]),
        Reply(text=lambda body: last_tool_output(body).split("--- stdout ---\n")[-1].strip()),
    )


def test_date_scenario_end_to_end(fake: FakeOpenAI, cli_env, workspace: Path) -> None:
    script_date_flow(fake)
    r = run_cli(["ask", "What date is today?", "--yes"], cli_env, workspace)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Today is {datetime.date.today().isoformat()}.\n"
    assert r.stderr == ""  # stderr is not a terminal: no activity, nothing skipped
    assert (workspace / "task.py").read_text() == DATE_SCRIPT
    assert fake.remaining() == 0
    # The coder was told to use tools; the proxy only got SendMessage.
    proxy_tools = [t["function"]["name"] for t in fake.for_agent("user_proxy")[0].body["tools"]]
    coder_tools = [t["function"]["name"] for t in fake.for_agent("coder")[0].body["tools"]]
    assert proxy_tools == ["SendMessage"] and coder_tools == ["File", "ExecutePyFile"]
    enum = fake.for_agent("user_proxy")[0].body["tools"][0]["function"]["parameters"]
    assert enum["properties"]["recipient"]["enum"] == ["coder"]


def test_stdout_is_plain_even_when_colour_is_forced(fake: FakeOpenAI, cli_env, workspace) -> None:
    env = {**cli_env, "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    env.pop("NO_COLOR")
    fake.script("user_proxy", Reply(text="# Title\n\n**bold** answer"))
    r = invoke(["ask", "hi"], env, workspace)
    assert r.returncode == 0
    assert r.stdout == "# Title\n\n**bold** answer\n"
    assert "\x1b" not in r.stdout + r.stderr


def test_piped_stdin_is_context_for_the_prompt(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="summary"))
    r = invoke(["ask", "summarise"], cli_env, workspace, stdin="line one\nline two\n")
    assert r.returncode == 0 and r.stdout == "summary\n"
    user = fake.requests[0].body["messages"][-1]["content"]
    assert user == "summarise\n\n<stdin>\nline one\nline two\n</stdin>"


def test_bare_command_with_pipe_behaves_as_ask(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="piped answer"))
    r = run_cli([], cli_env, workspace, stdin="what is up?\n")
    assert r.returncode == 0 and r.stdout == "piped answer\n"
    assert fake.requests[0].body["messages"][-1]["content"] == "what is up?"


def test_dash_reads_prompt_from_stdin(fake: FakeOpenAI, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="ok"))
    r = invoke(["ask", "-"], cli_env, workspace, stdin="from stdin")
    assert r.returncode == 0
    assert fake.requests[0].body["messages"][-1]["content"] == "from stdin"


def test_json_output(fake: FakeOpenAI, cli_env, workspace) -> None:
    script_date_flow(fake)
    r = invoke(["ask", "date?", "--json", "-y"], cli_env, workspace)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "completed"
    assert out["answer"].startswith("Today is ")
    assert out["thread_id"].startswith("thread_") and out["duration_ms"] >= 0
    assert out["usage"]["user_proxy"]["total_tokens"] == 30
    assert out["usage"]["coder"]["total_tokens"] == 45
    assert [(c["agent"], c["name"], c["ok"]) for c in out["tool_calls"]] == [
        ("user_proxy", "SendMessage", True),
        ("coder", "File", True),
        ("coder", "ExecutePyFile", True),
    ]


def test_non_interactive_run_skips_code_and_says_how_to_allow(fake, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="unused"))
    fake.script(
        "coder",
        Reply(tool_calls=[call("File", chain_of_thought="", file_name="t.py", body="open('ran', 'w')\n")]),
        Reply(tool_calls=[call("ExecutePyFile", file_name="t.py")]),
        Reply(text=lambda b: "report: " + last_tool_output(b)),
    )
    agents = workspace / "agents.yaml"
    agents.write_text(
        "entry: coder\nagents:\n  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n"
    )
    r = invoke(["ask", "go"], cli_env, workspace)
    assert r.returncode == 0
    assert not (workspace / "ran").exists()
    assert r.stderr.count("\n") == 1
    assert "skipped running t.py" in r.stderr and "--yes" in r.stderr
    assert "was not run" in r.stdout


@pytest.mark.parametrize("fault", ["429", "500", "drop", "drop_mid", "truncate"])
def test_provider_failure_after_retries_exits_4(fake, cli_env, workspace, fault: str) -> None:
    fake.script("user_proxy", *[Reply(fault=fault, text="partial answer") for _ in range(3)])
    env = {**cli_env, "SWARMCHAT_MAX_RETRIES": "2"}
    r = invoke(["ask", "hi"], env, workspace)
    assert r.returncode == 4, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("swarmchat: error: model call failed after 3 attempts")
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_transient_fault_recovers(fake, cli_env, workspace) -> None:
    fake.script(
        "user_proxy",
        Reply(fault="429", retry_after="0"),
        Reply(fault="drop_mid", text="xx"),
        Reply(text="fine"),
    )
    r = invoke(["ask", "hi"], cli_env, workspace)
    assert r.returncode == 0 and r.stdout == "fine\n"


def test_rejected_key_exits_3(fake, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(fault="401"))
    r = invoke(["ask", "hi"], cli_env, workspace)
    assert r.returncode == 3
    assert "HTTP 401" in r.stderr and KEY not in r.stderr


def test_missing_key_names_the_variable(cli_env, workspace) -> None:
    env = {**cli_env, "OPENAI_BASE_URL": "https://api.example.invalid/v1"}
    env.pop("OPENAI_API_KEY")
    r = invoke(["ask", "hi"], env, workspace)
    assert r.returncode == 3
    assert r.stderr.startswith("swarmchat: error: no API key found\nhint: set OPENAI_API_KEY")


def test_dotenv_loads_without_overriding(fake, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="ok"))
    env = {**cli_env, "SWARMCHAT_MODEL": "from-shell"}
    (workspace / ".env").write_text("SWARMCHAT_MODEL=from-dotenv\nOPENAI_API_KEY=sk-dotenv-key\n")
    env.pop("OPENAI_API_KEY")
    r = invoke(["ask", "hi"], env, workspace)
    assert r.returncode == 0, r.stderr
    assert fake.requests[0].body["model"] == "from-shell"


def test_model_precedence(fake, cli_env, workspace) -> None:
    (workspace / "agents.yaml").write_text(
        "model: file-default\nagents:\n  a:\n    description: x\n    model: agent-model\n"
    )
    fake.script("a", Reply(text="1"), Reply(text="2"), Reply(text="3"))
    assert invoke(["ask", "x"], cli_env, workspace).returncode == 0
    assert invoke(["ask", "x"], {**cli_env, "SWARMCHAT_MODEL": "env-model"}, workspace).returncode == 0
    assert (
        invoke(
            ["ask", "x", "-m", "flag-model"], {**cli_env, "SWARMCHAT_MODEL": "env-model"}, workspace
        ).returncode
        == 0
    )
    assert [r.body["model"] for r in fake.requests] == ["agent-model", "env-model", "flag-model"]


def test_bad_agents_file_names_file_and_line(cli_env, workspace) -> None:
    (workspace / "agents.yaml").write_text("agents:\n  a:\n    description: x\n    tols: [File]\n")
    r = invoke(["ask", "hi"], cli_env, workspace)
    assert r.returncode == 3
    assert r.stderr.splitlines()[0] == (
        "swarmchat: error: agents.yaml:4: agents.a.tols: unknown field 'tols' (did you mean "
        "'tools'?); allowed: description, instructions, model, temperature, tools, talks_to, "
        "color, max_turns, network"
    )


def test_agents_check_and_listing(cli_env, workspace, tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "agents:\n  boss:\n    description: b\n    talks_to: [dev]\n"
        "  dev:\n    description: d\n    tools: [File]\n"
    )
    r = run_cli(["agents", "--check", str(good)], cli_env, workspace)
    assert r.returncode == 0 and "ok (2 agents, entry: boss)" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  boss:\n    description: b\n    talks_to: [deev]\n")
    r = run_cli(["agents", "--check", str(bad)], cli_env, workspace)
    assert r.returncode == 3
    assert f"{bad}:4: agents.boss.talks_to[0]: no agent named 'deev'" in r.stderr
    r = run_cli(["agents"], cli_env, workspace)
    assert r.returncode == 0
    assert "user_proxy *" in r.stdout and "File, ExecutePyFile" in r.stdout


@pytest.mark.parametrize("args", [["--bogus"], ["ask", "--max-turns", "0", "x"], ["ask"]])
def test_usage_errors_exit_2(cli_env, workspace, args) -> None:
    r = invoke(args, cli_env, workspace, stdin="")
    assert r.returncode == 2
    assert r.stderr.startswith("swarmchat: error: ") and "Traceback" not in r.stderr


def test_turn_limit_exits_5(fake, cli_env, workspace) -> None:
    (workspace / "agents.yaml").write_text("agents:\n  a:\n    description: x\n    tools: [File]\n")
    looping = Reply(tool_calls=[call("File", chain_of_thought="", file_name="n.txt", body="x")])
    fake.script("a", *[looping] * 3)
    r = invoke(["ask", "x", "--max-turns", "3"], cli_env, workspace)
    assert r.returncode == 5
    assert "turn limit" in r.stderr and "--max-turns" in r.stderr


def test_unknown_tool_and_bad_arguments_go_back_to_model(fake, cli_env, workspace) -> None:
    (workspace / "agents.yaml").write_text("agents:\n  a:\n    description: x\n    tools: [File]\n")
    fake.script(
        "a",
        Reply(tool_calls=[("Shell", '{"cmd": "rm -rf /"}')]),
        Reply(tool_calls=[("File", '{"file_name": "x.py", "body": ')]),
        Reply(text=lambda b: "saw: " + last_tool_output(b)),
    )
    r = invoke(["ask", "x", "--json"], cli_env, workspace)
    assert r.returncode == 0
    out = json.loads(r.stdout)
    assert [c["ok"] for c in out["tool_calls"]] == [False, False]
    assert "unknown tool 'Shell'" in out["tool_calls"][0]["output"]
    assert "not valid JSON" in out["answer"]


def test_parallel_send_messages_overlap(fake, cli_env, workspace) -> None:
    (workspace / "agents.yaml").write_text(
        "agents:\n  boss:\n    description: b\n    talks_to: [one, two]\n"
        "  one:\n    description: o\n  two:\n    description: t\n"
    )
    fake.script(
        "boss",
        Reply(
            tool_calls=[
                call("SendMessage", recipient="one", message="a"),
                call("SendMessage", recipient="two", message="b"),
            ]
        ),
        Reply(text=lambda b: "done"),
    )
    fake.script("one", Reply(text="from one", barrier="pair"))
    fake.script("two", Reply(text="from two", barrier="pair"))
    r = invoke(["ask", "x", "--json"], cli_env, workspace)
    assert r.returncode == 0, r.stderr
    one, two = fake.for_agent("one")[0], fake.for_agent("two")[0]
    # Each sub-agent's request waited for the other's to arrive: they were in flight together.
    assert one.barrier_met and two.barrier_met
    assert max(one.started, two.started) < min(one.ended, two.ended)
    tools = [m for m in fake.for_agent("boss")[1].body["messages"] if m["role"] == "tool"]
    assert [t["content"] for t in tools] == ["from one", "from two"]


def test_secrets_never_stored_or_printed(fake, cli_env, workspace, tmp_path) -> None:
    fake.script("user_proxy", Reply(text=f"the key is {KEY}"))
    r = invoke(["ask", f"remember {KEY}", "--json"], cli_env, workspace)
    assert r.returncode == 0
    db = tmp_path / "home" / "swarmchat.db"
    assert KEY.encode() not in db.read_bytes()
    rows = sqlite3.connect(db).execute("SELECT content FROM messages").fetchall()
    assert ("remember [redacted]",) in rows and ("the key is [redacted]",) in rows
    for path in (tmp_path / "home").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_closed_stdout_pipe_exits_quietly(fake, cli_env, workspace) -> None:
    fake.script("user_proxy", Reply(text="line\n" * 20000))
    proc = subprocess.Popen(
        [SWARMCHAT, "ask", "x"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=cli_env,
        cwd=workspace,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0
    assert err == ""


@pytest.mark.parametrize(
    "args",
    [
        ["agents"],
        ["--help"],
        ["ask", "--help"],
        ["doctor"],
        ["ask", "x"],
        ["ask", "x", "--json"],
        ["ask", "x", "--jsonl"],
        ["ask", "x", "-q"],
    ],
)
def test_stdout_closed_before_the_first_write_exits_quietly(fake, cli_env, workspace, args) -> None:
    # `swarmchat ... | true`: the reader is gone before anything is written.
    fake.script("user_proxy", Reply(text="an answer"))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [SWARMCHAT, *args], stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=cli_env, cwd=workspace, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr.decode()) == (0, "")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["ask", "--help"]])
def test_version_and_help_do_not_import_heavy_modules(args, tmp_path) -> None:
    code = (
        "import sys\nfrom swarmchat.__main__ import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('openai', 'instructor', 'prompt_toolkit', 'rich.markdown') "
        "if m in sys.modules]\nprint('HEAVY', heavy, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "HEAVY []" in r.stderr
    assert "swarmchat" in r.stdout


def test_repl_path_does_not_import_the_sdk(tmp_path) -> None:
    """The prompt must appear before openai (about a second) is imported."""
    code = (
        "import sys\nimport swarmchat.repl, swarmchat.render.tty, swarmchat.render.plain, swarmchat.session\n"
        "print([m for m in ('openai', 'instructor') if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip() == "[]", r.stderr


@pytest.mark.parametrize(
    ("args", "agents_yaml", "expected"),
    [
        (["--bogus"], None, 2),
        (["ask", "hi"], "agents:\n  a: {descripton: x}\n", 3),
        (["ask", "hi"], "agents:\n  a: {description: x}\n", 4),
    ],
)
def test_exit_status_reaches_the_shell(fake, cli_env, workspace, args, agents_yaml, expected) -> None:
    """In-process tests check run()'s codes; this checks the installed command exits with them."""
    if agents_yaml:
        (workspace / "agents.yaml").write_text(agents_yaml)
    fake.script("a", Reply(fault="500"))
    r = run_cli(args, {**cli_env, "SWARMCHAT_MAX_RETRIES": "0"}, workspace)
    assert r.returncode == expected, r.stderr
    assert r.stderr.startswith("swarmchat: error: ") and "Traceback" not in r.stderr


def test_root_options_apply_to_ask(fake, cli_env, workspace):
    fake.script("user_proxy", Reply(text="a"), Reply(text="b"))
    r = invoke(["-m", "root-model", "ask", "x"], cli_env, workspace)
    assert r.returncode == 0, r.stderr
    r = invoke(["-m", "root-model", "ask", "x", "-m", "ask-model"], cli_env, workspace)
    assert [q.body["model"] for q in fake.requests] == ["root-model", "ask-model"]


def test_version_answers_before_other_options_are_checked(cli_env, workspace) -> None:
    for args in (["--sandbox", "bogus", "--version"], ["--color", "blue", "-V"]):
        r = invoke(args, cli_env, workspace)
        assert (r.returncode, r.stdout) == (0, f"swarmchat {swarmchat.__version__}\n"), r.stderr


def test_an_option_given_at_its_default_value_still_wins(fake, cli_env, workspace) -> None:
    """``--timeout 60`` after the subcommand overrides ``--timeout 1`` before it, even
    though 60 is the default: what counts is that the user gave it."""
    (workspace / "agents.yaml").write_text(
        "sandbox: none\nagents:\n  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n"
    )
    fake.script(
        "coder",
        Reply(
            tool_calls=[
                call("File", chain_of_thought="", file_name="t.py", body="import time\ntime.sleep(1.5)\n")
            ]
        ),
        Reply(tool_calls=[call("ExecutePyFile", file_name="t.py")]),
        Reply(text=lambda b: last_tool_output(b)),
    )
    r = invoke(["--timeout", "1", "ask", "--timeout", "60", "x", "-y"], cli_env, workspace)
    assert r.returncode == 0 and r.stdout.startswith("exit status 0"), r.stdout + r.stderr


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        ([b"ask", b"caf\xe9"], b""),
        ([b"ask"], b"caf\xe9 au lait"),
        ([b"ask", b"sum up"], b"\xff\xfebin\x00ary"),
    ],
)
def test_input_that_is_not_utf8_is_replaced_not_fatal(fake, cli_env, workspace, args, stdin) -> None:
    fake.script("user_proxy", Reply(text="ok"))
    r = subprocess.run(
        [SWARMCHAT.encode(), *args], input=stdin, capture_output=True, env=cli_env, cwd=workspace, timeout=60
    )
    assert r.returncode == 0 and r.stdout == b"ok\n", r.stderr
    assert r.stderr.decode().count("not valid UTF-8") == 1
    sent = fake.requests[0].body["messages"][-1]["content"]
    assert "\ufffd" in sent
    with sqlite3.connect(Path(cli_env["SWARMCHAT_HOME"]) / "swarmchat.db") as db:
        assert db.execute(
            "select count(*) from runs where status in ('queued', 'in_progress')"
        ).fetchone() == (0,)


@pytest.mark.parametrize("where", ["a-file", "a-file/below", "read-only"])
def test_an_unusable_data_directory_is_named_with_exit_3(fake, cli_env, workspace, tmp_path, where) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    if where == "read-only":
        if os.access("/proc/sys", os.W_OK):
            pytest.skip("needs a read-only mount (/proc/sys in a container)")
        home = Path("/proc/sys")
    else:
        home = tmp_path / where
    r = run_cli(["ask", "hi"], {**cli_env, "SWARMCHAT_HOME": str(home)}, workspace)
    assert r.returncode == 3 and str(home) in r.stderr and "internal error" not in r.stderr, r.stderr
    assert "hint: set SWARMCHAT_HOME to a directory you can write to" in r.stderr
    assert fake.requests == []


def test_a_read_only_workspace_is_refused_up_front_only_when_agents_write(
    fake, cli_env, workspace, tmp_path
) -> None:
    if os.access("/proc/sys", os.W_OK):
        pytest.skip("needs a read-only directory even for root (/proc/sys in a container)")
    r = run_cli(["-w", "/proc/sys", "ask", "hi"], cli_env, workspace)
    assert r.returncode == 3 and "the workspace /proc/sys is read-only" in r.stderr, r.stderr
    assert "hint: " in r.stderr and fake.requests == []
    chat_only = tmp_path / "chat.yaml"
    chat_only.write_text("agents:\n  helper:\n    description: Answers questions.\n")
    fake.script("helper", Reply(text="hello"))
    r = run_cli(["-w", "/proc/sys", "-a", str(chat_only), "ask", "hi"], cli_env, workspace)
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--color", "sometimes", "ask", "hi"], 2, "--color must be one of"),
        (["ask", "  "], 2, "the prompt is empty"),
        (["ask", "hi", "--include-partial"], 2, "--include-partial"),
        (["-a", "bad.yaml", "agents"], 3, "bad.yaml:3: agents.a.descripton"),
        (["-a", "binary.yaml", "agents"], 3, "binary.yaml is not a text file"),
        (["-a", "missing.yaml", "agents"], 3, "agents file not found"),
        (["-w", "no-such-dir", "ask", "hi"], 3, "workspace does not exist"),
    ],
)
def test_every_error_has_a_hint(fake, cli_env, workspace, args, code, message) -> None:
    (workspace / "bad.yaml").write_text("agents:\n  a:\n    descripton: x\n")
    (workspace / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01binary")
    r = invoke(args, cli_env, workspace)
    lines = r.stderr.splitlines()
    assert r.returncode == code and message in lines[0], r.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), r.stderr


@pytest.mark.parametrize("args", [["ask", "@coder fix the bug"], ["ask", "--agent", "coder", "fix the bug"]])
def test_ask_can_address_a_specialist_as_the_repl_does(fake, cli_env, workspace, args) -> None:
    fake.script("coder", Reply(text="coder here"))
    r = invoke(args, cli_env, workspace)
    assert (r.returncode, r.stdout) == (0, "coder here\n"), r.stderr
    assert [q.agent for q in fake.requests] == ["coder"]
    assert fake.requests[0].body["messages"][-1]["content"] == "fix the bug"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "@codr fix it"], "no agent named 'codr' (did you mean coder?)"),
        (["ask", "--agent", "nobody", "hi"], "no agent named 'nobody'"),
        (["ask", "@coder"], "nothing to say to @coder"),
    ],
)
def test_ask_to_an_unknown_agent_is_a_usage_error(fake, cli_env, workspace, args, message) -> None:
    r = invoke(args, cli_env, workspace)
    assert r.returncode == 2 and message in r.stderr and "hint: " in r.stderr, r.stderr
    assert fake.requests == []
