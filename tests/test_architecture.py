"""The layout docs/architecture.md describes, checked: which module may import which
outside library, that imports point down (edges -> session -> runner -> parts), and that
there are no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "swarmchat"

LIBRARY_HOMES = {
    "openai": {"client"},
    "instructor": {"tools.base"},
    "rich": {"render.tty"},
    "prompt_toolkit": {"prompts"},
    "typer": {"cli"},
    "click": set(),
    "sqlite3": {"store"},
    "subprocess": set(),
    "yaml": {"swarm"},
    "dotenv": {"environment"},
    "platformdirs": {"environment"},
}

EDGES = {"cli", "repl", "oneshot", "prompts", "slash", "__main__"}
CORE = {
    "runner",
    "scope",
    "tools",
    "client",
    "store",
    "sandbox",
    "workspace",
    "approval",
    "events",
    "messages",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every module ``path`` imports, at any depth (``runtime_only``: not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "swarmchat":  # from swarmchat import x
                found |= {f"swarmchat.{a.name}" for a in node.names}
    return found


def own_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_each_outside_library_is_imported_in_one_place() -> None:
    for name, path in own_modules().items():
        for imported in imports(path):
            top = imported.split(".")[0]
            if top in LIBRARY_HOMES:
                assert name in LIBRARY_HOMES[top], f"{name} imports {imported}"
    supervisor = (PACKAGE / "sandbox" / "supervise.py").read_text()
    for name, path in own_modules().items():
        if "create_subprocess" in path.read_text():
            assert path.read_text() is supervisor or name == "sandbox.supervise", name


def test_imports_point_down() -> None:
    for name, path in own_modules().items():
        ours = {i.removeprefix("swarmchat.") for i in imports(path) if i.startswith("swarmchat.")}
        top = name.split(".")[0]
        if top in CORE:
            upward = {i for i in ours if i.split(".")[0] in EDGES | {"session", "render"}}
            assert not upward, f"{name} imports {upward}"
        if top == "render":
            assert not {i for i in ours if i.split(".")[0] in EDGES | CORE - {"events", "messages"}}, name
        if top not in EDGES:
            assert not {i for i in ours if i.split(".")[0] in EDGES - {"prompts"}}, name


def test_no_import_cycles() -> None:
    modules = own_modules()
    graph = {
        name: {
            i.removeprefix("swarmchat.")
            for i in imports(path, runtime_only=True)
            if i.startswith("swarmchat.") and i.removeprefix("swarmchat.") in modules
        }
        for name, path in modules.items()
    }
    # A package's __init__ runs before its submodules: "render.tty" depends on "render".
    for name in graph:
        if "." in name:
            graph[name].add(name.rsplit(".", 1)[0])
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in graph[node]:
            if nxt == node:
                continue
            assert state.get(nxt) != "open", " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])
