"""One run's identity, bundled: who runs, for whom, where in the delegation chain, and
where its events go.

The runner and the tools pass this one value instead of six loose ones; every event a run
emits is stamped from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from swarmchat.events import Event
from swarmchat.swarm import AgentSpec


@dataclass(frozen=True)
class RunScope:
    agent: AgentSpec
    caller: str  # "user", or the agent that sent the message
    chain: tuple[str, ...]  # agents waiting in this delegation, the entry agent first
    depth: int  # 0 for the agent the user talks to
    emit: Callable[[Event], None]  # the turn's event sink, shared by every run in it
    thread_id: str = ""
    run_id: str = ""

    @property
    def ids(self) -> dict[str, Any]:
        """The fields every event of this run carries."""
        return {"agent": self.agent.name, "run_id": self.run_id, "depth": self.depth}

    def delegate_to(self, agent: AgentSpec) -> RunScope:
        """The scope of a run that this run's agent starts with SendMessage."""
        return RunScope(agent, self.agent.name, (*self.chain, agent.name), self.depth + 1, self.emit)
