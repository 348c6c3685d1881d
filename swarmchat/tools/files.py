"""``File``: an agent writes a file into the workspace (never outside it; see workspace.py)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from swarmchat.events import ToolSummary
from swarmchat.tools.base import Tool, ToolContext

WORKSPACE_NOTE = "Files live in the workspace; always use paths relative to it."


class File(Tool):
    """Create or replace a file in the workspace. Use it to write Python scripts (and data
    files they need) before running them with ExecutePyFile."""

    prompt_note: ClassVar[str] = WORKSPACE_NOTE
    chain_of_thought: str = Field(
        description="Think step by step: what must this file contain to do the task correctly?"
    )
    file_name: str = Field(description="Path relative to the workspace, e.g. task.py")
    body: str = Field(description="The complete content of the file")

    def summary(self) -> ToolSummary:
        return ToolSummary(
            activity=f"writing {self.file_name}",
            headline=f"writes {self.file_name}",
            preview=self.body,
            language="python" if self.file_name.endswith(".py") else "text",
            brief_arguments={"file_name": self.file_name},
        )

    async def run(self, ctx: ToolContext) -> str:
        data = self.body.encode("utf-8")
        path = ctx.workspace.write(self.file_name, data)
        return f"Wrote {len(data)} bytes to {path}."
