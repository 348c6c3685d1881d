"""Fixtures for the sandbox suites (helpers live in ``sbx_helpers``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sbx_helpers import TIERS


@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    value = f"sk-live-{uuid.uuid4().hex}"
    for name in (
        "OPENAI_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "DATABASE_PASSWORD",
        "SLACK_BOT_TOKEN",
    ):
        monkeypatch.setenv(name, value)
    yield value
