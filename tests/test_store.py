"""The SQLite store: migrations from the first schema, redaction, and run bookkeeping."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from swarmchat.environment import Redactor
from swarmchat.errors import ConfigError
from swarmchat.events import Usage
from swarmchat.messages import ChatMessage, ToolCall
from swarmchat.store import MIGRATIONS, Store

SECRET = "sk-live-0123456789abcdef"


def test_a_new_database_is_at_the_latest_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "threads", "messages", "runs"} <= tables


def test_upgrades_from_the_first_schema_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version=1;\nCOMMIT;")
    old.execute("INSERT INTO sessions VALUES ('sess_old', 1.0, 'agents.yaml', '/ws')")
    old.execute("INSERT INTO threads VALUES ('thread_old', 'sess_old', 'user', 'a', 1.0)")
    old.execute(
        "INSERT INTO messages (thread_id, role, agent, content, created) VALUES ('thread_old', 'user', 'user', 'hi', 1.0)"
    )
    old.close()
    store = Store(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.thread_for("sess_old", "user", "a") == "thread_old"
    assert store.messages("thread_old") == [ChatMessage("user", "hi")]


def test_a_database_from_a_newer_swarmchat_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(ConfigError, match="written by a newer swarmchat"):
        Store(path)


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="cannot open the database"):
        Store(path)


def test_threads_are_one_per_pair_and_session(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    s1, s2 = store.create_session("a.yaml", "/ws"), store.create_session("a.yaml", "/ws")
    t = store.thread_for(s1, "user", "boss")
    assert store.thread_for(s1, "user", "boss") == t
    assert len({t, store.thread_for(s1, "boss", "coder"), store.thread_for(s2, "user", "boss")}) == 3
    assert store.threads(s1) == [
        (t, "user", "boss"),
        (store.thread_for(s1, "boss", "coder"), "boss", "coder"),
    ]


def test_secrets_are_redacted_everywhere_and_the_history_is_what_was_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", Redactor([SECRET]))
    thread = store.thread_for(store.create_session("a.yaml", "/ws"), "user", "a")
    run = store.start_run(thread, "a", "m", "user", f"my key is {SECRET}")
    call = ChatMessage("assistant", "", (ToolCall("c1", "File", f'{{"body": "{SECRET}"}}'),))
    run.record([call, ChatMessage("tool", f"echo {SECRET}", tool_call_id="c1")], "in_progress", Usage(1, 2))
    run.record(status="failed", usage=Usage(3, 4), error=f"leaked {SECRET}")
    assert SECRET.encode() not in (tmp_path / "db").read_bytes() + _wal(tmp_path / "db")
    assert run.history == store.messages(thread)  # the model sees exactly what is stored
    assert run.history[0].content == "my key is [redacted]"
    assert run.history[1].tool_calls[0].arguments == '{"body": "[redacted]"}'
    row = store.db.execute(
        "SELECT status, prompt_tokens, completion_tokens, error, ended FROM runs"
    ).fetchone()
    assert row[:4] == ("failed", 3, 4, "leaked [redacted]") and row[4] is not None


def test_each_step_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "db")
    thread = store.thread_for(store.create_session("a.yaml", "/ws"), "user", "a")
    run = store.start_run(thread, "a", "m", "user", "hi")

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_set_status", broken)
    with pytest.raises(sqlite3.OperationalError):
        run.record([ChatMessage("assistant", "half")], "completed")
    assert [m.content for m in store.messages(thread)] == ["hi"]  # the message was rolled back
    assert [m.content for m in run.history] == ["hi"]
    status = store.db.execute("SELECT status FROM runs WHERE id=?", (run.run_id,)).fetchone()[0]
    assert status == "in_progress"


def _wal(db: Path) -> bytes:
    wal = db.with_name(db.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""
