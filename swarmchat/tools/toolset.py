"""The tools one agent may call: its declared ones, and SendMessage for its ``talks_to``."""

from __future__ import annotations

from swarmchat.swarm import AgentSpec, SwarmSpec
from swarmchat.tools import BUILTIN, SEND_MESSAGE, load
from swarmchat.tools.base import Tool
from swarmchat.tools.send_message import send_message_tool


def tools_for(agent: AgentSpec, swarm: SwarmSpec) -> dict[str, type[Tool]]:
    """The agent's tools, by the name the model uses, in the order the file lists them."""
    tools = {name: load(BUILTIN[name]) for name in agent.tools}
    if agent.talks_to:
        tools[SEND_MESSAGE] = send_message_tool(agent, swarm)
    return tools
