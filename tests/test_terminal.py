"""In a real terminal emulator (tmux): a long streamed answer lands in scrollback once."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
from clitools import SWARMCHAT
from fakeserver import FakeOpenAI, Reply

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def test_answer_taller_than_the_screen_has_no_duplicated_lines(fake: FakeOpenAI, cli_env, workspace) -> None:
    answer = "".join(f"para {i:03d} " + "word " * 12 + "\n\n" for i in range(120))
    answer += "final " + "tail " * 200  # a last paragraph that never settles until the end
    fake.script("user_proxy", Reply(text=answer, chunk_delay=0.002))
    session = f"swarmchat-test-{uuid.uuid4().hex[:8]}"
    env_args = [arg for k, v in cli_env.items() if k != "TERM" for arg in ("-e", f"{k}={v}")]
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            *env_args,
            "sh",
            "-c",
            f"'{SWARMCHAT}' ask 'long answer please'; sleep 60",
        ],
        cwd=workspace,
        check=True,
        env={**cli_env, "TERM": "xterm-256color"},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session, "-S", "-2000"], capture_output=True, text=True
            ).stdout
            if "all agents" in screen:
                break
            time.sleep(0.2)
        assert "all agents" in screen, screen[-2000:]
        for i in range(120):
            assert screen.count(f"para {i:03d} ") == 1, (
                f"para {i:03d} appears {screen.count(f'para {i:03d} ')} times"
            )
        assert screen.count("final tail") == 1
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
