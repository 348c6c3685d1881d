"""``SendMessage``: delegation. Made per agent, so ``recipient`` is an enum of exactly the
agents it may talk to; the runner runs the recipient on its own thread with the caller."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model

from swarmchat.events import ToolSummary
from swarmchat.swarm import AgentSpec, SwarmSpec
from swarmchat.tools.base import Tool, ToolContext


class SendMessageBase(Tool):
    """Behaviour shared by every agent's SendMessage; the fields are made per agent."""

    recipient: str
    message: str

    def summary(self) -> ToolSummary:
        return ToolSummary(
            activity=f"waiting for {self.recipient}",
            headline=f"asks {self.recipient}",
            brief_arguments={"recipient": self.recipient},
            delegates=True,
        )

    async def run(self, ctx: ToolContext) -> str:
        return await ctx.delegate(self.recipient, self.message)


def send_message_tool(agent: AgentSpec, swarm: SwarmSpec) -> type[Tool]:
    """A ``SendMessage`` whose ``recipient`` is an enum of ``agent.talks_to``."""
    lines = "\n".join(f"- {n}: {swarm.agents[n].description}" for n in agent.talks_to)
    doc = (
        "Send a message to another agent and wait for its answer, which is returned as the "
        "result. Each recipient remembers earlier messages from you. Give complete, "
        f"self-contained instructions. Recipients:\n{lines}"
    )
    recipient_type: Any = Literal[tuple(agent.talks_to)]

    def as_enum(schema: dict[str, Any]) -> None:
        schema.pop("const", None)  # a one-name Literal would otherwise become "const"
        schema["enum"] = list(agent.talks_to)

    cls: type[Tool] = create_model(
        "SendMessage",
        __base__=SendMessageBase,
        __doc__=doc,
        recipient=(
            recipient_type,
            Field(description="The agent to send the message to", json_schema_extra=as_enum),
        ),
        message=(str, Field(description="The task or question, with every detail needed")),
    )
    cls.prompt_note = f"You can delegate with the SendMessage tool to:\n{lines}"
    return cls
