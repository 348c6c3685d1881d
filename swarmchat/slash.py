"""Slash commands of the REPL, independent of the line editor.

Each command reads or changes the session and reports through ``say``; the REPL keeps the
terminal. ``/agents`` draws the swarm as a tree along its ``talks_to`` edges; ``/show``
prints an agent's threads from the store.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from swarmchat.session import Session
from swarmchat.swarm import SwarmSpec

Say = Callable[[str, str], None]

HELP = """\
/help            this list
/agents          the swarm as a tree: model, tools, and who talks to whom
/show AGENT      the threads of AGENT in this session
/model [NAME]    show the model, or use NAME for every agent from now on
/yes             toggle running code without asking, for this session
/brief           fold each finished sub-agent exchange into one line
/verbose         show sub-agent conversations in full (the default)
/new             start fresh threads (every agent forgets this conversation)
/exit            leave (also Ctrl-D, or Ctrl-C twice on an empty prompt)
@AGENT message   talk to AGENT directly, on its own thread with you
Enter sends · Alt+Enter, Ctrl-J or a trailing \\ adds a line · Ctrl-G or Ctrl-X Ctrl-E
opens $EDITOR · Ctrl-R searches history · Tab completes · Ctrl-C cancels a running turn"""

NAMES = ("/help", "/agents", "/show", "/model", "/yes", "/brief", "/verbose", "/new", "/exit", "/quit")


@dataclass
class CommandState:
    """What commands may toggle (read by the REPL on the next turn)."""

    brief: bool = False
    running: bool = True


def agent_tree(swarm: SwarmSpec) -> list[tuple[int, str, str]]:
    """(depth, line, colour) rows: the entry agent first, then who it talks to, and so on.
    An agent reached twice is listed once more as a reference, so cycles stay finite."""
    rows: list[tuple[int, str, str]] = []
    seen: set[str] = set()

    def visit(name: str, depth: int) -> None:
        a = swarm.agents[name]
        if name in seen:
            rows.append((depth, f"{name} (see above)", a.color))
            return
        seen.add(name)
        tools = ", ".join(a.all_tools) or "no tools"
        net = " · network" if a.network else ""
        rows.append((depth, f"{name} · {a.model} · {tools}{net}", a.color))
        for peer in a.talks_to:
            visit(peer, depth + 1)

    visit(swarm.entry, 0)
    for name in swarm.agents:  # agents nobody talks to
        if name not in seen:
            visit(name, 0)
    return rows


def resolve_agent(swarm: SwarmSpec, name: str) -> str | None:
    return name if name in swarm.agents else None


def unknown_agent(swarm: SwarmSpec, name: str) -> str:
    close = difflib.get_close_matches(name, list(swarm.agents), n=1)
    hint = f" (did you mean @{close[0]}?)" if close else ""
    return f"no agent named '{name}'{hint}; /agents lists them"


def run_command(line: str, session: Session, state: CommandState, say: Say) -> None:
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    swarm = session.swarm
    if name in ("/exit", "/quit"):
        state.running = False
    elif name == "/help":
        say(HELP, "")
    elif name == "/new":
        session.new_threads()
        say("fresh threads: the agents have forgotten this conversation", "dim")
    elif name == "/agents":
        for depth, text, color in agent_tree(swarm):
            say(("  " * (depth - 1) + "└─ " if depth else "") + text, color)
    elif name == "/show":
        show_threads(session, arg, say)
    elif name == "/model":
        if not arg:
            say(f"model: {swarm.entry_agent.model} (usage: /model NAME)", "dim")
        else:
            session.set_model(arg)
            say(f"every agent now uses {arg}", "dim")
    elif name == "/yes":
        auto = session.approver.mode != "auto"
        session.approver.mode = "auto" if auto else "ask"
        say(
            "code now runs without asking (this session)" if auto else "code runs only after you approve it",
            "dim",
        )
    elif name in ("/brief", "/verbose"):
        state.brief = name == "/brief"
        say(
            "sub-agent exchanges fold into one line"
            if state.brief
            else "sub-agent conversations shown in full",
            "dim",
        )
    else:
        close = difflib.get_close_matches(name, NAMES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        say(f"unknown command {name}{hint}; /help lists them", "yellow")


def show_threads(session: Session, agent: str, say: Say) -> None:
    if not agent:
        say("usage: /show AGENT", "yellow")
        return
    if resolve_agent(session.swarm, agent) is None:
        say(unknown_agent(session.swarm, agent), "yellow")
        return
    threads = [t for t in session.store.threads(session.session_id) if agent in (t[1], t[2])]
    if not threads:
        say(f"{agent} has no threads in this session yet", "dim")
    for thread_id, caller, callee in threads:
        say(f"── {caller} → {callee} ({thread_id})", "bold")
        for m in session.store.messages(thread_id):
            who = callee if m.role == "assistant" else caller if m.role == "user" else "tool"
            text = m.content.strip() or ", ".join(f"{c.name}(…)" for c in m.tool_calls)
            lines = text.splitlines() or [""]
            more = f" … ({len(lines) - 6} more lines)" if len(lines) > 6 else ""
            color = session.swarm.agents[who].color if who in session.swarm.agents else "dim"
            say(f"{who}: " + "\n    ".join(lines[:6]) + more, color)
