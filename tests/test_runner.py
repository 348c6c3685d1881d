"""Run-loop behaviour with a scripted model: delegation, tools, errors, limits, threads."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from scripted import ScriptedModel, calls, harness, say

from swarmchat.events import MessageSent, RunFinished, ToolCallFinished
from swarmchat.messages import ChatRequest, Completion
from swarmchat.runner import RunOptions


def tool_outputs(h, name: str | None = None) -> list[str]:
    return [
        e.output for e in h.events if isinstance(e, ToolCallFinished) and (name is None or e.name == name)
    ]


def test_proxy_delegates_coder_writes_and_runs_file(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script(
        "user_proxy",
        calls(("SendMessage", {"recipient": "coder", "message": "sum 1..10"})),
        say("The sum is 55."),
    )
    m.script(
        "coder",
        calls(
            (
                "File",
                {"chain_of_thought": "loop", "file_name": "task.py", "body": "print(sum(range(1, 11)))\n"},
            )
        ),
        calls(("ExecutePyFile", {"file_name": "task.py"})),
        say("55"),
    )
    h = harness(tmp_path, m)
    result = asyncio.run(h.ask("What is 1+..+10?"))
    assert result.status == "completed" and result.text == "The sum is 55."
    assert (h.workspace / "task.py").read_text() == "print(sum(range(1, 11)))\n"
    run_output = tool_outputs(h, "ExecutePyFile")[0]
    assert "exit status 0" in run_output and "55" in run_output
    # The SendMessage result given back to the proxy is the coder's final answer.
    proxy_second = [r for a, r in m.requests if a == "user_proxy"][1]
    assert proxy_second.messages[-1].role == "tool" and proxy_second.messages[-1].content == "55"
    assert m.remaining() == 0


def test_code_runs_of_a_session_share_one_refreshed_copy(tmp_path: Path, monkeypatch) -> None:
    import swarmchat.copies

    made = []
    real = swarmchat.copies._new_copy
    monkeypatch.setattr(swarmchat.copies, "_new_copy", lambda *a: made.append(real(*a)) or made[-1])
    m = ScriptedModel()
    m.script(
        "coder",
        calls(
            (
                "File",
                {
                    "chain_of_thought": "",
                    "file_name": "one.py",
                    "body": "open('out.txt', 'w').write('one')\n",
                },
            )
        ),
        calls(("ExecutePyFile", {"file_name": "one.py"})),
        calls(("File", {"chain_of_thought": "", "file_name": "note.txt", "body": "a note"})),
        calls(
            (
                "File",
                {
                    "chain_of_thought": "",
                    "file_name": "two.py",
                    "body": "print(open('out.txt').read(), open('note.txt').read())\n",
                },
            )
        ),
        calls(("ExecutePyFile", {"file_name": "two.py"})),
        say("done"),
    )
    h = harness(tmp_path, m)
    h.runner.copies.keep = True  # as a Session's pool does
    assert asyncio.run(h.ask("go", agent="coder")).status == "completed"
    second = tool_outputs(h, "ExecutePyFile")[1]
    assert "one a note" in second, second
    assert len(made) == 1 and made[0].base.exists(), "the second run refreshed the first run's copy"
    h.runner.copies.close()
    assert not made[0].base.exists()


def test_specialist_thread_persists_across_calls(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script(
        "user_proxy",
        calls(("SendMessage", {"recipient": "writer", "message": "remember 42"})),
        calls(("SendMessage", {"recipient": "writer", "message": "what did I say?"})),
        say("done"),
    )
    m.script("writer", say("ok"), say("you said 42"))
    h = harness(tmp_path, m)
    asyncio.run(h.ask("go"))
    second = [r for a, r in m.requests if a == "writer"][1]
    contents = [(x.role, x.content) for x in second.messages[1:]]
    assert contents == [("user", "remember 42"), ("assistant", "ok"), ("user", "what did I say?")]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (("Nope", {"x": 1}), "unknown tool 'Nope'"),
        (("Fiel", {}), "Did you mean 'File'?"),
        (("File", '{"file_name": "a.py", "body": '), "not valid JSON"),
        (("File", {"file_name": "a.py"}), "invalid arguments for File: chain_of_thought: Field required"),
        (
            ("File", {"chain_of_thought": "", "file_name": "a.py", "body": "", "extra": 1}),
            "extra: Extra inputs are not permitted",
        ),
        (("File", {"chain_of_thought": "", "file_name": "../x.py", "body": ""}), "leaves the workspace"),
        (("ExecutePyFile", {"file_name": "missing.py"}), "does not exist"),
    ],
)
def test_tool_errors_go_back_to_the_model(tmp_path: Path, call, expected) -> None:
    m = ScriptedModel()
    m.script("coder", calls(call), say("recovered"))
    h = harness(tmp_path, m)
    result = asyncio.run(h.ask("x", agent="coder"))
    assert result.status == "completed" and result.text == "recovered"
    fed_back = [r for a, r in m.requests if a == "coder"][1].messages[-1]
    assert fed_back.role == "tool" and expected in fed_back.content, fed_back.content
    assert not next(e for e in h.events if isinstance(e, ToolCallFinished)).ok


def test_tool_exception_goes_back_to_the_model(tmp_path: Path, monkeypatch) -> None:
    from swarmchat.tools.files import File

    async def boom(self, ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(File, "run", boom)
    m = ScriptedModel()
    m.script("coder", calls(("File", {"chain_of_thought": "", "file_name": "a", "body": ""})), say("ok"))
    h = harness(tmp_path, m)
    assert asyncio.run(h.ask("x", agent="coder")).status == "completed"
    assert "File failed with RuntimeError: disk on fire" in tool_outputs(h)[0]


def test_exec_timeout_goes_back_to_the_model(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script(
        "coder",
        calls(
            ("File", {"chain_of_thought": "", "file_name": "t.py", "body": "import time\ntime.sleep(30)\n"})
        ),
        calls(("ExecutePyFile", {"file_name": "t.py"})),
        say("too slow"),
    )
    h = harness(tmp_path, m, options=RunOptions(exec_timeout=1))
    started = time.monotonic()
    assert asyncio.run(h.ask("x", agent="coder")).status == "completed"
    assert time.monotonic() - started < 10
    assert "timed out after 1 s" in tool_outputs(h, "ExecutePyFile")[0]


def test_turn_limit_ends_run_incomplete(tmp_path: Path) -> None:
    m = ScriptedModel()
    loop = calls(("File", {"chain_of_thought": "", "file_name": "a.txt", "body": "x"}))
    m.script("coder", *[loop] * 3)
    h = harness(tmp_path, m, options=RunOptions(max_turns=3))
    result = asyncio.run(h.ask("x", agent="coder"))
    assert result.status == "incomplete" and "turn limit" in result.text
    assert len(m.requests) == 3


def test_specialist_turn_limit_is_reported_to_caller(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script(
        "user_proxy", calls(("SendMessage", {"recipient": "writer", "message": "go"})), say("writer gave up")
    )
    m.script("writer", *[calls(("Missing", {}))] * 2)
    h = harness(tmp_path, m, options=RunOptions(max_turns=2))
    result = asyncio.run(h.ask("x"))
    assert result.status == "completed"
    assert "writer did not finish" in tool_outputs(h, "SendMessage")[0]
    assert "turn limit" in tool_outputs(h, "SendMessage")[0]


def test_agent_in_call_chain_cannot_be_messaged(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script("user_proxy", calls(("SendMessage", {"recipient": "coder", "message": "a"})), say("end"))
    m.script("coder", calls(("SendMessage", {"recipient": "helper", "message": "b"})), say("c done"))
    m.script("helper", calls(("SendMessage", {"recipient": "user_proxy", "message": "loop?"})), say("h done"))
    h = harness(tmp_path, m)
    assert asyncio.run(h.ask("x")).status == "completed"
    refusal = [o for o in tool_outputs(h) if "call chain" in o]
    assert refusal and "user_proxy → coder → helper" in refusal[0]


def test_depth_limit(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script("user_proxy", calls(("SendMessage", {"recipient": "coder", "message": "a"})), say("end"))
    m.script("coder", calls(("SendMessage", {"recipient": "helper", "message": "b"})), say("c"))
    m.script("helper", calls(("SendMessage", {"recipient": "deep", "message": "c"})), say("h"))
    m.script("deep", calls(("SendMessage", {"recipient": "deeper", "message": "d"})), say("d"))
    h = harness(tmp_path, m, options=RunOptions(max_depth=3))
    assert asyncio.run(h.ask("x")).status == "completed"
    assert any("depth limit reached (3" in o for o in tool_outputs(h))
    assert not [a for a, _ in m.requests if a == "deeper"]


def test_parallel_send_messages_overlap_and_keep_order(tmp_path: Path) -> None:
    both_started = asyncio.Event()
    arrived: list[str] = []

    def waiting(name: str):
        async def step(request: ChatRequest) -> Completion:
            arrived.append(name)
            if len(arrived) == 2:
                both_started.set()
            # Completes only if the other agent's request is in flight at the same time.
            await asyncio.wait_for(both_started.wait(), timeout=5)
            return say(f"{name} answer")

        return step

    m = ScriptedModel()
    m.script(
        "user_proxy",
        calls(
            ("SendMessage", {"recipient": "coder", "message": "1"}),
            ("SendMessage", {"recipient": "writer", "message": "2"}),
        ),
        say("both done"),
    )
    m.script("coder", waiting("coder"))
    m.script("writer", waiting("writer"))
    h = harness(tmp_path, m)
    assert asyncio.run(h.ask("x")).status == "completed"
    assert sorted(arrived) == ["coder", "writer"]
    results = [r for a, r in m.requests if a == "user_proxy"][1].messages[-2:]
    assert [x.content for x in results] == ["coder answer", "writer answer"]
    assert [x.tool_call_id for x in results] == ["call_0", "call_1"]


def test_cancel_leaves_thread_valid(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def hang(request: ChatRequest) -> Completion:
        started.set()
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    m = ScriptedModel()
    m.script(
        "user_proxy",
        calls(("SendMessage", {"recipient": "writer", "message": "slow"})),
        say("second turn ok"),
    )
    m.script("writer", hang)
    h = harness(tmp_path, m)

    async def scenario() -> RunFinished:
        task = asyncio.create_task(h.ask("first"))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await h.ask("again")

    result = asyncio.run(scenario())
    assert result.text == "second turn ok"
    history = [r for a, r in m.requests if a == "user_proxy"][1].messages
    roles = [x.role for x in history[1:]]
    assert roles == ["user", "assistant", "tool", "user"]
    assert "Cancelled" in history[3].content
    statuses = [e.status for e in h.events if isinstance(e, RunFinished)]
    assert statuses == ["cancelled", "cancelled", "completed"]


def test_message_sent_event_and_run_statuses(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script("user_proxy", calls(("SendMessage", {"recipient": "writer", "message": "hi"})), say("ok"))
    m.script("writer", say("hello"))
    h = harness(tmp_path, m)
    result = asyncio.run(h.ask("x"))
    sent = [e for e in h.events if isinstance(e, MessageSent)]
    assert [(e.agent, e.recipient, e.text) for e in sent] == [("user_proxy", "writer", "hi")]
    assert result.usage.total_tokens == 10
    assert h.store.db.execute("SELECT count(*) FROM runs WHERE status='completed'").fetchone()[0] == 2


def test_non_interactive_denies_code(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script(
        "coder",
        calls(("File", {"chain_of_thought": "", "file_name": "t.py", "body": "open('ran','w')"})),
        calls(("ExecutePyFile", {"file_name": "t.py"})),
        say("could not run"),
    )
    h = harness(tmp_path, m, mode="deny")
    asyncio.run(h.ask("x", agent="coder"))
    assert "was not run" in tool_outputs(h, "ExecutePyFile")[0]
    assert not (h.workspace / "ran").exists()


def test_approval_question_names_unconfined_and_network() -> None:
    from swarmchat.approval import Approver
    from swarmchat.events import Approval

    asked: list[str] = []

    async def ask(question: str) -> str:
        asked.append(question)
        return "n"

    approver = Approver("ask", ask)
    asyncio.run(approver.decide(Approval("a.py")))
    asyncio.run(approver.decide(Approval("b.py", sandbox="none", network=True)))
    assert asked == [
        "Run a.py? [y]es / [n]o / [a]lways this session",
        "Run b.py UNCONFINED (no sandbox) with network access? [y]es / [n]o / [a]lways this session",
    ]


def test_tracebacks_name_workspace_files_not_the_private_copy(tmp_path: Path) -> None:
    m = ScriptedModel()
    m.script(
        "coder",
        calls(
            (
                "File",
                {
                    "chain_of_thought": "",
                    "file_name": "bad.py",
                    "body": "import os\nprint(os.getcwd())\n1/0\n",
                },
            )
        ),
        calls(("ExecutePyFile", {"file_name": "bad.py"})),
        say("done"),
    )
    h = harness(tmp_path, m)
    asyncio.run(h.ask("go", agent="coder"))
    output = tool_outputs(h, "ExecutePyFile")[0]
    assert 'File "./bad.py", line 3' in output and "ZeroDivisionError" in output, output
    assert "swarmchat-run-" not in output.replace(os.getcwd(), "")
