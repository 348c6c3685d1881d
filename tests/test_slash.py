"""REPL slash commands against a real session (no terminal, no model call)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmchat.messages import ChatMessage
from swarmchat.session import Options, Session
from swarmchat.slash import HELP, NAMES, CommandState, agent_tree, run_command

AGENTS = (
    "agents:\n  boss:\n    description: b\n    talks_to: [coder, writer]\n"
    "  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n    talks_to: [boss]\n"
    "  writer:\n    description: w\n    network: true\n  loner:\n    description: l\n"
)


@pytest.fixture
def session(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.setenv("SWARMCHAT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SWARMCHAT_MODEL", raising=False)
    (workspace / "agents.yaml").write_text(AGENTS)
    s = Session(Options(agents_file=str(workspace / "agents.yaml"), workspace=str(workspace)))
    yield s
    s.store.close()


def command(line: str, session: Session, state: CommandState | None = None) -> list[tuple[str, str]]:
    said: list[tuple[str, str]] = []
    run_command(line, session, state or CommandState(), lambda text, style: said.append((text, style)))
    return said


def test_help_lists_every_command(session: Session) -> None:
    [(text, _)] = command("/help", session)
    assert text == HELP
    for name in NAMES:
        if name != "/quit":
            assert name in HELP


def test_agents_tree_follows_talks_to_and_stays_finite(session: Session) -> None:
    rows = [(depth, line) for depth, line, _ in agent_tree(session.swarm)]
    assert rows == [
        (0, "boss · gpt-4.1-mini · SendMessage"),
        (1, "coder · gpt-4.1-mini · File, ExecutePyFile, SendMessage"),
        (2, "boss (see above)"),
        (1, "writer · gpt-4.1-mini · no tools · network"),
        (0, "loner · gpt-4.1-mini · no tools"),
    ]
    assert [t for t, _ in command("/agents", session)][
        1
    ] == "└─ coder · gpt-4.1-mini · File, ExecutePyFile, SendMessage"


def test_model_shows_and_sets_the_model_of_every_agent(session: Session) -> None:
    assert command("/model", session) == [("model: gpt-4.1-mini (usage: /model NAME)", "dim")]
    command("/model other-model", session)
    assert {a.model for a in session.swarm.agents.values()} == {"other-model"}


def test_toggles(session: Session) -> None:
    state = CommandState()
    assert session.approver.mode == "deny"  # no asker: a session without a terminal
    command("/yes", session, state)
    assert session.approver.mode == "auto"
    command("/yes", session, state)
    assert session.approver.mode == "ask"
    command("/brief", session, state)
    assert state.brief
    command("/verbose", session, state)
    assert not state.brief
    command("/exit", session, state)
    assert not state.running


def test_new_forgets_the_conversation(session: Session) -> None:
    before = session.session_id
    command("/new", session)
    assert session.session_id != before


def test_show_prints_an_agents_threads(session: Session) -> None:
    assert command("/show", session) == [("usage: /show AGENT", "yellow")]
    assert "did you mean @coder?" in command("/show codr", session)[0][0]
    assert command("/show coder", session) == [("coder has no threads in this session yet", "dim")]
    thread = session.store.thread_for(session.session_id, "boss", "coder")
    run = session.store.start_run(thread, "coder", "m", "boss", "write it")
    run.record([ChatMessage("assistant", "\n".join(f"line {i}" for i in range(9)))], "completed")
    said = [text for text, _ in command("/show coder", session)]
    assert said[0] == f"── boss → coder ({thread})"
    assert said[1] == "boss: write it"
    assert said[2].startswith("coder: line 0\n    line 1") and said[2].endswith("line 5 … (3 more lines)")


def test_unknown_command_suggests_the_closest(session: Session) -> None:
    assert command("/agnets", session) == [
        ("unknown command /agnets (did you mean /agents?); /help lists them", "yellow")
    ]
