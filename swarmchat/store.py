"""Local SQLite persistence of sessions, threads, messages and runs.

The only module that imports ``sqlite3``. The schema evolves through the numbered
``MIGRATIONS`` list (applied in order, tracked with ``PRAGMA user_version``), as ``llm``
does, so old databases upgrade in place and nothing is lost.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from swarmchat.errors import ConfigError
from swarmchat.events import RunStatus, Usage
from swarmchat.messages import ChatMessage, ToolCall

MIGRATIONS: list[str] = [
    # 1: the Assistants-style model kept locally
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        swarm TEXT NOT NULL,
        workspace TEXT NOT NULL
    );
    CREATE TABLE threads (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        created REAL NOT NULL,
        UNIQUE (session_id, caller, callee)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        thread_id TEXT NOT NULL REFERENCES threads(id),
        role TEXT NOT NULL,
        agent TEXT,
        content TEXT NOT NULL,
        tool_calls TEXT,
        tool_call_id TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX messages_thread ON messages(thread_id, id);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads(id),
        agent TEXT NOT NULL,
        model TEXT NOT NULL,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        ended REAL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX runs_thread ON runs(thread_id);
    """,
]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class Store:
    """Threads and runs in one SQLite file; every text passes through ``redact`` first."""

    def __init__(self, path: Path | str, redact: Callable[[str], str] = lambda s: s) -> None:
        self.path = str(path)
        self._redact = redact
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute("PRAGMA foreign_keys=ON")
            migrate(self.db)
        except sqlite3.DatabaseError as exc:
            hint = (
                "move the file aside or set SWARMCHAT_HOME"
                if os.path.isfile(self.path)
                else "set SWARMCHAT_HOME to a directory you can write to"
            )
            raise ConfigError(f"cannot open the database {self.path}: {exc}", hint) from None

    def close(self) -> None:
        self.db.close()

    # sessions and threads ------------------------------------------------------------

    def create_session(self, swarm: str, workspace: str) -> str:
        sid = new_id("sess")
        self.db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (sid, time.time(), swarm, workspace))
        return sid

    def thread_for(self, session_id: str, caller: str, callee: str) -> str:
        """The one thread between ``caller`` and ``callee`` in this session."""
        row = self.db.execute(
            "SELECT id FROM threads WHERE session_id=? AND caller=? AND callee=?",
            (session_id, caller, callee),
        ).fetchone()
        if row:
            return str(row[0])
        tid = new_id("thread")
        self.db.execute(
            "INSERT INTO threads VALUES (?, ?, ?, ?, ?)", (tid, session_id, caller, callee, time.time())
        )
        return tid

    def threads(self, session_id: str) -> list[tuple[str, str, str]]:
        return [
            (str(a), str(b), str(c))
            for a, b, c in self.db.execute(
                "SELECT id, caller, callee FROM threads WHERE session_id=? ORDER BY created", (session_id,)
            )
        ]

    def messages(self, thread_id: str) -> list[ChatMessage]:
        out = []
        for role, content, calls, call_id in self.db.execute(
            "SELECT role, content, tool_calls, tool_call_id FROM messages WHERE thread_id=? ORDER BY id",
            (thread_id,),
        ):
            tool_calls = tuple(ToolCall(*c) for c in json.loads(calls)) if calls else ()
            out.append(ChatMessage(role, content, tool_calls, call_id))
        return out

    # runs ----------------------------------------------------------------------------

    def start_run(self, thread_id: str, agent: str, model: str, caller: str, message: str) -> RunLog:
        """A new ``in_progress`` run of ``agent`` on the thread, with the caller's message."""
        run_id = new_id("run")
        history = self.messages(thread_id)
        with _transaction(self.db):
            self.db.execute(
                "INSERT INTO runs (id, thread_id, agent, model, status, created) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, thread_id, agent, model, "in_progress", time.time()),
            )
            history += self._insert(thread_id, caller, [ChatMessage("user", message)])
        return RunLog(self, thread_id, run_id, agent, history)

    def _insert(self, thread_id: str, author: str, messages: list[ChatMessage]) -> list[ChatMessage]:
        """Append messages (inside the caller's transaction); returns them as stored."""
        stored = [self._redact_message(m) for m in messages]
        rows = [
            (
                thread_id,
                m.role,
                author,
                m.content,
                json.dumps([[c.id, c.name, c.arguments] for c in m.tool_calls]) if m.tool_calls else None,
                m.tool_call_id,
                time.time(),
            )
            for m in stored
        ]
        self.db.executemany(
            "INSERT INTO messages (thread_id, role, agent, content, tool_calls, tool_call_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return stored

    def _redact_message(self, m: ChatMessage) -> ChatMessage:
        calls = tuple(ToolCall(c.id, c.name, self._redact(c.arguments)) for c in m.tool_calls)
        return ChatMessage(m.role, self._redact(m.content), calls, m.tool_call_id)

    def _set_status(self, run_id: str, status: RunStatus, usage: Usage, error: str | None) -> None:
        final = status in ("completed", "failed", "cancelled", "incomplete")
        self.db.execute(
            "UPDATE runs SET status=?, ended=?, prompt_tokens=?, completion_tokens=?, error=? WHERE id=?",
            (
                status,
                time.time() if final else None,
                usage.prompt_tokens,
                usage.completion_tokens,
                self._redact(error) if error else None,
                run_id,
            ),
        )


class RunLog:
    """One run's writes: its status and its thread's messages, each step one transaction.

    ``history`` is the thread as stored (redacted), kept in memory from the run's start:
    only one run at a time works on a thread, so the loop never needs to re-read it.
    """

    def __init__(self, store: Store, thread_id: str, run_id: str, agent: str, history: list[ChatMessage]):
        self.store = store
        self.thread_id = thread_id
        self.run_id = run_id
        self.agent = agent
        self.history = history

    def record(
        self,
        messages: list[ChatMessage] | None = None,
        status: RunStatus | None = None,
        usage: Usage | None = None,
        error: str | None = None,
    ) -> None:
        """Append the agent's messages and/or move the run to ``status``, atomically."""
        stored: list[ChatMessage] = []
        with _transaction(self.store.db):
            if messages:
                stored = self.store._insert(self.thread_id, self.agent, messages)
            if status is not None:
                self.store._set_status(self.run_id, status, usage or Usage(), error)
        self.history += stored  # only once committed: memory never runs ahead of the file


class _transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def migrate(db: sqlite3.Connection) -> None:
    """Apply every migration newer than the database's ``user_version``."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise ConfigError(
            f"the database was written by a newer swarmchat (schema {version})",
            "upgrade swarmchat or set SWARMCHAT_HOME to another directory",
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
