"""The tools agents call, and the one table that registers them.

A tool is one class (see ``base.Tool``): its arguments model, its name, the words a person
reads while it works, whether it needs the user's approval and what that shows, and what
it does. Registering a built-in tool is one line in :data:`BUILTIN`: the name an
``agents.yaml`` lists, and where the class lives. The table holds import paths, not
classes, so validating a swarm file never imports the tools (they pull in instructor and
openai, a second of start-up). ``SendMessage`` is not listed: every agent with
``talks_to`` gets one, made for its recipients (``toolset.tools_for``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarmchat.tools.base import Tool

BUILTIN: dict[str, str] = {
    "File": "swarmchat.tools.files:File",
    "ExecutePyFile": "swarmchat.tools.execute:ExecutePyFile",
}
SEND_MESSAGE = "SendMessage"


def load(path: str) -> type[Tool]:
    """The tool class at ``module:attribute``."""
    module, _, attribute = path.partition(":")
    cls: type[Tool] = getattr(importlib.import_module(module), attribute)
    return cls
