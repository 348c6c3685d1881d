"""What a user installs: every module ships, the version is declared once."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import swarmchat

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_a_package() -> None:
    """setuptools finds packages by their __init__.py: a directory without one would be
    left out of a wheel (an editable install would hide that)."""
    for path in (ROOT / "swarmchat").rglob("*.py"):
        assert (path.parent / "__init__.py").exists(), path.parent
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["swarmchat", "swarmchat.*"]


def test_the_version_lives_in_one_place() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"] and config["project"]["dynamic"] == ["version"]
    assert importlib.metadata.version("swarmchat") == swarmchat.__version__
