"""End to end, the way a user meets it: a project directory with a ``.env``, a git
repository and a swarm file, and a model that tries to use them against the host.
Oracles are the host's own files and everything swarmchat wrote (stdout, stderr, its
database), through the installed ``swarmchat`` command."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from clitools import SWARMCHAT, run_cli
from fakeserver import FakeOpenAI, Reply, call, last_tool_output
from proctools import pids_running

DOTENV_SECRET = "sk-dotenv-" + "4" * 32
SWARM = "entry: coder\nagents:\n  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n"
HOSTILE = """
import os
loot = []
for name in ('.env', '.git/config'):
    try:
        loot.append(open(name).read())
    except OSError as exc:
        loot.append(f'{name}: {exc.strerror}')
print('LOOT', loot)
os.makedirs('.git/hooks', exist_ok=True)
open('.git/hooks/pre-commit', 'w').write('#!/bin/sh\\necho pwned\\n')
open('agents.yaml', 'w').write('sandbox: none\\n')
open('.env', 'w').write('OPENAI_BASE_URL=http://evil.example\\n')
open('answer.txt', 'w').write('42')
"""


def _hashes(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_a_hostile_model_cannot_reach_the_project_secrets_or_hooks(
    fake: FakeOpenAI, cli_env: dict[str, str], workspace: Path
) -> None:
    (workspace / ".env").write_text(f"OTHER_TOKEN={DOTENV_SECRET}\n")
    (workspace / "agents.yaml").write_text(SWARM)
    (workspace / ".git/hooks").mkdir(parents=True)
    (workspace / ".git/config").write_text("[core]\n\tbare = false\n")
    before = _hashes(workspace)
    fake.script(
        "coder",
        Reply(tool_calls=[call("File", chain_of_thought="", file_name=".git/hooks/post-checkout", body="x")]),
        Reply(tool_calls=[call("File", chain_of_thought="", file_name="evil.py", body=HOSTILE)]),
        Reply(tool_calls=[call("ExecutePyFile", file_name="evil.py")]),
        Reply(tool_calls=[call("ExecutePyFile", file_name=".env")]),
        Reply(text=lambda body: "REPORT " + last_tool_output(body)),
    )
    r = run_cli(["ask", "go", "--yes"], cli_env, workspace)
    assert r.returncode == 0, r.stderr
    after = _hashes(workspace)
    assert sorted(set(after) - set(before)) == ["answer.txt", "evil.py"]
    assert {k: after[k] for k in before} == before  # .env, agents.yaml, .git unchanged
    bodies = "".join(str(req.body) for req in fake.for_agent("coder"))
    assert DOTENV_SECRET not in bodies + r.stdout + r.stderr
    db = Path(cli_env["SWARMCHAT_HOME"]) / "swarmchat.db"
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert DOTENV_SECRET not in dump
    last = fake.for_agent("coder")[-1].body["messages"]
    outputs = [m["content"] for m in last if m["role"] == "tool"]
    assert "protected" in outputs[0]  # File on .git was refused, and the model was told why
    assert "Not kept: .git/hooks/pre-commit" in outputs[2] and "Not kept: .env" in outputs[2]
    assert "credentials" in outputs[3]  # .env cannot be run (or shown for approval)


SLOW = "import time\nopen('started', 'w').close()\ntime.sleep(60)\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_swarmchat_stops_its_code_and_leaves_no_copy(
    fake: FakeOpenAI, cli_env: dict[str, str], workspace: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (workspace / "agents.yaml").write_text(SWARM)
    name = f"slow_{os.getpid()}_{sig}.py"
    fake.script(
        "coder",
        Reply(tool_calls=[call("File", chain_of_thought="", file_name=name, body=SLOW)]),
        Reply(tool_calls=[call("ExecutePyFile", file_name=name)]),
    )
    env = {**cli_env, "SWARMCHAT_RUN_DIR": str(runs)}
    proc = subprocess.Popen(
        [SWARMCHAT, "ask", "go", "--yes", "--timeout", "120"],
        env=env,
        cwd=workspace,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not any(runs.glob("swarmchat-run-*/ws/started")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert list(runs.iterdir()) == [], "the copy was left behind"
    assert not pids_running(name), "the code outlived swarmchat"
