"""Fixtures for the sandbox suites (helpers live in ``sbx_helpers``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sbx_helpers import TIERS
from sbx_roles import NOBODY, ROLES, ROOT, SYSTEM_PYTHON, Box, Role, delegate, role_named, undelegate


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


@pytest.fixture(scope="session")
def package_copy() -> Iterator[Path]:
    """swarmchat as uid 65534 can import it (the venv lives under /root, mode 0700)."""
    base = Path(tempfile.mkdtemp(prefix="sbxtest-pkg-", dir="/tmp"))
    shutil.copytree(ROOT / "swarmchat", base / "swarmchat", ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, _, filenames in os.walk(base):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> Role:
    found = role_named(str(request.param))
    if os.getuid() != 0:
        pytest.skip("these scenarios start as root (CI and this machine run tests as root)")
    if found.runtime_python == SYSTEM_PYTHON and not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} is needed for an interpreter uid {NOBODY} can run")
    return found


@pytest.fixture
def box(role: Role, tier: str, package_copy: Path) -> Iterator[Box]:
    base = Path(tempfile.mkdtemp(prefix="sbxtest-", dir="/tmp"))
    os.chmod(base, 0o755)
    made = Box(role, tier, base, package_copy)
    made.ws.mkdir()
    os.chown(made.ws, role.code_uid, role.code_uid)
    made.tmp.mkdir(mode=0o700)
    os.chown(made.tmp, role.driver_uid, role.driver_uid)
    if role.driver_uid != 0:
        made.delegated = delegate(role.driver_uid)
    try:
        yield made
    finally:
        undelegate(made.delegated)
        shutil.rmtree(base, ignore_errors=True)
