"""Shared fixtures: the fake provider and an isolated environment for the real CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeserver import FakeOpenAI


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def cli_env(tmp_path: Path, fake: FakeOpenAI) -> dict[str, str]:
    """Environment for a subprocess: fake provider, private home, fast retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "SWARMCHAT_"))}
    env.update(
        OPENAI_API_KEY="sk-test-SECRET-0123456789",
        OPENAI_BASE_URL=fake.base_url,
        SWARMCHAT_HOME=str(tmp_path / "home"),
        SWARMCHAT_RETRY_BASE_DELAY="0.01",
        NO_COLOR="1",
        TERM="dumb",
    )
    env.pop("FORCE_COLOR", None)
    return env


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The directory agents work in (every suite uses this one)."""
    path = tmp_path / "ws"
    path.mkdir()
    return path
