"""agents.yaml validation: one-line errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmchat.errors import ConfigError
from swarmchat.swarm import load_swarm, parse_swarm, stable_color

ROOT = Path(__file__).resolve().parent.parent


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_swarm(text, "f.yaml")
    message = info.value.message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "agents:\n  a:\n    description: x\n    tools: [Fiel]\n",
            "f.yaml:4: agents.a.tools[0]: unknown tool 'Fiel' (did you mean 'File'?); known tools: File, "
            "ExecutePyFile",
        ),
        (
            "agents:\n  a:\n    description: x\n    talks_to: [bb]\n  b:\n    description: y\n",
            "f.yaml:4: agents.a.talks_to[0]: no agent named 'bb' (did you mean 'b'?)",
        ),
        ("entry: nobody\nagents:\n  a:\n    description: x\n", "f.yaml:1: entry: no agent named 'nobody'"),
        (
            "agents:\n  a:\n    descripton: x\n",
            "f.yaml:3: agents.a.descripton: unknown field 'descripton' (did you mean 'description'?)",
        ),
        (
            "modle: x\nagents:\n  a:\n    description: x\n",
            "f.yaml:1: modle: unknown field 'modle' (did you mean 'model'?)",
        ),
        ("agents:\n  a:\n    instructions: x\n", "f.yaml:2: agents.a.description: required field is missing"),
        (
            "agents:\n  a:\n    description: x\n    temperature: 9\n",
            "f.yaml:4: agents.a.temperature: Input should be less",
        ),
        (
            "agents:\n  a:\n    description: x\n    tools: File\n",
            "f.yaml:4: agents.a.tools: Input should be a valid list",
        ),
        (
            "agents:\n  a:\n    description: x\n  a:\n    description: y\n",
            "f.yaml:4: agents.a: duplicate key",
        ),
        ("agents:\n  a: {description: x\n", "f.yaml:3: invalid YAML"),
        ("version: 2\nagents:\n  a: {description: x}\n", "f.yaml:1: version: unsupported version"),
        ("agents: {}\n", "f.yaml:1: agents: "),
        ("- a\n- b\n", "f.yaml:1: expected a mapping"),
        ("agents:\n  a:\n    description: x\n    talks_to: [a]\n", "cannot talk to itself"),
        (
            "agents:\n  a:\n    description: x\n    tools: [SendMessage]\n",
            "SendMessage is given automatically",
        ),
        (
            "agents:\n  a:\n    description: x\n    color: cyna\n",
            "f.yaml:4: agents.a.color: unknown colour 'cyna' (did you mean 'cyan'?)",
        ),
        ("agents:\n  a b:\n    description: x\n", "f.yaml:2: agents.a b: agent names use"),
    ],
)
def test_validation_errors(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_defaults_are_resolved() -> None:
    swarm = parse_swarm(
        "model: m1\nagents:\n  a:\n    description: x\n    talks_to: [b]\n"
        "  b:\n    description: y\n    model: m2\n    max_turns: 4\n",
        "f.yaml",
    )
    assert swarm.entry == "a"
    assert (swarm.agents["a"].model, swarm.agents["b"].model) == ("m1", "m2")
    assert swarm.agents["a"].max_turns == 20 and swarm.agents["b"].max_turns == 4
    assert swarm.agents["a"].color == stable_color("a")
    assert parse_swarm("agents:\n  a: {description: x}\n", "f").with_model("o").agents["a"].model == "o"


def test_stable_colour_is_deterministic() -> None:
    assert stable_color("researcher") == stable_color("researcher")
    assert len({stable_color(n) for n in ("a", "b", "c", "d", "e", "f", "g")}) > 1


def test_repo_default_is_the_bundled_copy(tmp_path: Path) -> None:
    assert (ROOT / "agents.yaml").read_text() == (ROOT / "swarmchat" / "agents.yaml").read_text()
    bundled = load_swarm(cwd=tmp_path)
    assert bundled.source == "<bundled agents.yaml>"
    assert bundled.entry == "user_proxy" and bundled.agents["user_proxy"].talks_to == ("coder",)
    assert bundled.agents["coder"].tools == ("File", "ExecutePyFile")


def test_local_file_wins_and_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "agents.yaml").write_text("agents:\n  solo: {description: x}\n")
    assert load_swarm(cwd=tmp_path).entry == "solo"
    with pytest.raises(ConfigError, match=r"agents file not found: nope\.yaml"):
        load_swarm("nope.yaml", cwd=tmp_path)
