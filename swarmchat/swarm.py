"""Load and validate ``agents.yaml`` into a resolved :class:`SwarmSpec`.

Everything from the file goes through strict pydantic models (``extra="forbid"``) and
every problem is reported as one line naming the file, the line and the field, because a
swarm file is hand-written and users fix it from the error alone.
"""

from __future__ import annotations

import difflib
import re
import zlib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swarmchat.errors import ConfigError
from swarmchat.sandbox import SandboxMode
from swarmchat.tools import BUILTIN, SEND_MESSAGE

DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_MAX_TURNS = 20
DEFAULT_FILE_NAME = "agents.yaml"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_BASE_COLORS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
KNOWN_COLORS: tuple[str, ...] = (
    *_BASE_COLORS,
    *(f"bright_{c}" for c in _BASE_COLORS),
    "orange1",
    "purple",
    "pink1",
    "gold1",
    "turquoise2",
    "spring_green2",
    "deep_sky_blue1",
    "orchid",
    "salmon1",
    "plum1",
    "khaki1",
    "aquamarine1",
    "sky_blue1",
    "light_coral",
)
_COLOR_RE = re.compile(r"^(#[0-9a-fA-F]{6}|color\(\d{1,3}\))$")
_PALETTE = (
    "magenta",
    "yellow",
    "blue",
    "orange1",
    "turquoise2",
    "orchid",
    "spring_green2",
    "deep_sky_blue1",
    "salmon1",
    "gold1",
    "plum1",
    "aquamarine1",
)


class AgentYaml(BaseModel):
    """One agent as written in the file."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1)
    instructions: str = ""
    model: str | None = Field(default=None, min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[str] = Field(default_factory=list)
    talks_to: list[str] = Field(default_factory=list)
    color: str | None = None
    max_turns: int | None = Field(default=None, ge=1, le=500)
    network: bool = False


class SwarmYaml(BaseModel):
    """The whole file (format version 1)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    model: str | None = Field(default=None, min_length=1)
    entry: str | None = None
    sandbox: SandboxMode = "auto"
    agents: dict[str, AgentYaml] = Field(min_length=1)


@dataclass(frozen=True)
class AgentSpec:
    """A resolved agent: every default applied, ready for the run loop."""

    name: str
    description: str
    instructions: str
    model: str
    temperature: float | None
    tools: tuple[str, ...]
    talks_to: tuple[str, ...]
    color: str
    max_turns: int
    network: bool = False

    @property
    def all_tools(self) -> tuple[str, ...]:
        """The tools the model sees: the declared ones, plus SendMessage with talks_to."""
        return (*self.tools, *((SEND_MESSAGE,) if self.talks_to else ()))


@dataclass(frozen=True)
class SwarmSpec:
    """The agents and which one the user talks to."""

    agents: dict[str, AgentSpec]
    entry: str
    source: str
    default_model: str = DEFAULT_MODEL
    sandbox: SandboxMode = "auto"

    @property
    def entry_agent(self) -> AgentSpec:
        return self.agents[self.entry]

    def with_model(self, model: str) -> SwarmSpec:
        """Return a copy where every agent uses ``model`` (``--model`` / ``/model``)."""
        agents = {n: replace(a, model=model) for n, a in self.agents.items()}
        return replace(self, agents=agents, default_model=model)

    def with_network(self) -> SwarmSpec:
        """Return a copy where every agent's code may use the network (``--network``)."""
        return replace(self, agents={n: replace(a, network=True) for n, a in self.agents.items()})


def stable_color(name: str) -> str:
    """A colour derived from the name, identical across runs and machines."""
    return _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


AGENTS_HINT = (
    "fix the file (the README's agents.yaml section lists every field); `swarmchat agents` checks it"
)


def find_agents_file(explicit: str | None, cwd: Path) -> tuple[str, str]:
    """Return ``(display name, text)`` of the agents file to use.

    Order: ``--agents FILE``, then ``./agents.yaml``, then the copy bundled with swarmchat.
    """
    if explicit:
        path = Path(explicit).expanduser()
        try:
            return explicit, path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"agents file not found: {explicit}", "check the path given to -a/--agents"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{explicit} is not a text file (not UTF-8)", AGENTS_HINT) from None
        except OSError as exc:
            raise ConfigError(f"cannot read agents file {explicit}: {exc.strerror}", AGENTS_HINT) from None
    local = cwd / DEFAULT_FILE_NAME
    if local.is_file():
        try:
            return DEFAULT_FILE_NAME, local.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{local} is not a text file (not UTF-8)", AGENTS_HINT) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {local}: {exc.strerror}", AGENTS_HINT) from None
    text = resources.files("swarmchat").joinpath(DEFAULT_FILE_NAME).read_text(encoding="utf-8")
    return "<bundled agents.yaml>", text


def load_swarm(explicit: str | None = None, cwd: Path | None = None) -> SwarmSpec:
    """Find, parse and validate the agents file."""
    name, text = find_agents_file(explicit, cwd or Path.cwd())
    try:
        return parse_swarm(text, name)
    except ConfigError as exc:
        exc.hint = exc.hint or AGENTS_HINT
        raise


def parse_swarm(text: str, source: str) -> SwarmSpec:
    """Validate ``text`` (the content of ``source``) and resolve every default."""
    data, lines = _load_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping with an 'agents:' key")
    try:
        spec = SwarmYaml.model_validate(data)
    except ValidationError as exc:
        raise _validation_to_config_error(exc, source, lines) from None
    return _resolve(spec, source, lines)


def _resolve(spec: SwarmYaml, source: str, lines: dict[tuple[Any, ...], int]) -> SwarmSpec:
    names = list(spec.agents)

    def fail(path: tuple[Any, ...], msg: str) -> ConfigError:
        return ConfigError(f"{source}:{_line_for(path, lines)}: {_dotted(path)}: {msg}")

    for name, agent in spec.agents.items():
        problem = _agent_problem(name, agent, names)
        if problem is not None:
            raise fail(("agents", name, *problem[0]), problem[1])
    entry = spec.entry if spec.entry is not None else names[0]
    if entry not in spec.agents:
        raise fail(("entry",), f"no agent named '{entry}'{_did_you_mean(entry, names)}")
    default_model = spec.model or DEFAULT_MODEL
    agents = {
        name: AgentSpec(
            name=name,
            description=a.description.strip(),
            instructions=a.instructions.strip(),
            model=a.model or default_model,
            temperature=a.temperature,
            tools=tuple(dict.fromkeys(a.tools)),
            talks_to=tuple(dict.fromkeys(a.talks_to)),
            color=a.color or stable_color(name),
            max_turns=a.max_turns or DEFAULT_MAX_TURNS,
            network=a.network,
        )
        for name, a in spec.agents.items()
    }
    return SwarmSpec(agents, entry, source, default_model, spec.sandbox)


def _agent_problem(name: str, agent: AgentYaml, names: list[str]) -> tuple[tuple[Any, ...], str] | None:
    """What is wrong with one agent beyond its types: (where under the agent, message)."""
    if not _NAME_RE.match(name):
        return (), "agent names use letters, digits, '_' or '-'"
    for i, tool in enumerate(agent.tools):
        if tool == SEND_MESSAGE:
            return ("tools", i), "SendMessage is given automatically; list recipients in talks_to"
        if tool not in BUILTIN:
            known = ", ".join(BUILTIN)
            return (
                "tools",
                i,
            ), f"unknown tool '{tool}'{_did_you_mean(tool, tuple(BUILTIN))}; known tools: {known}"
    for i, peer in enumerate(agent.talks_to):
        if peer == name:
            return ("talks_to", i), "an agent cannot talk to itself"
        if peer not in names:
            return ("talks_to", i), f"no agent named '{peer}'{_did_you_mean(peer, names)}"
    if agent.color is not None and not (agent.color in KNOWN_COLORS or _COLOR_RE.match(agent.color)):
        hint = _did_you_mean(agent.color, KNOWN_COLORS)
        return ("color",), f"unknown colour '{agent.color}'{hint}; use a name like 'cyan' or '#rrggbb'"
    return None


# --- YAML with line numbers -------------------------------------------------------------


def _load_yaml(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML and remember the line of every key, so errors can point at it."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{source}:{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _walk(node, (), lines, source)
    return data, lines


def _walk(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], source: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ConfigError(
                    f"{source}:{key_node.start_mark.line + 1}: {_dotted((*path, key))}: duplicate key"
                )
            seen.add(key)
            _walk(value_node, (*path, key), lines, source)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, source)


def _line_for(path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return 1


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _validation_to_config_error(
    exc: ValidationError, source: str, lines: dict[tuple[Any, ...], int]
) -> ConfigError:
    # An unknown key is usually a typo of a missing one: report the typo first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    path = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        key = str(path[-1])
        allowed = _allowed_keys(path[:-1])
        msg = f"unknown field '{key}'{_did_you_mean(key, allowed)}"
        if allowed:
            msg += f"; allowed: {', '.join(allowed)}"
    elif err["type"] == "missing":
        msg = "required field is missing"
    else:
        msg = err["msg"]
        if err["type"] == "literal_error" and path == ("version",):
            msg = "unsupported version; this swarmchat reads version 1"
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return ConfigError(f"{source}:{_line_for(path, lines)}: {_dotted(path)}: {msg}{suffix}")


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    if parent == ():
        return list(SwarmYaml.model_fields)
    if len(parent) == 2 and parent[0] == "agents":
        return list(AgentYaml.model_fields)
    return []
