"""One error hierarchy. The CLI maps each class to an exit code, in one place (cli.py).

Every error carries a one-line message and an optional hint, because users see them as
``swarmchat: error: <message>`` followed by ``hint: <hint>`` and never as a traceback.
``code`` names the error in machine-readable output (``--jsonl``).
"""

from __future__ import annotations

from typing import ClassVar


class SwarmchatError(Exception):
    """Base class: anything swarmchat reports to the user as a clean, one-line error."""

    code: ClassVar[str] = "run_failed"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class RunFailedError(SwarmchatError):
    """The entry agent's run ended as ``failed``."""


class UsageError(SwarmchatError):
    """The command line itself is wrong (bad option, missing prompt)."""

    code = "usage_error"


class ConfigError(SwarmchatError):
    """A configuration problem the user must fix: agents file, environment, workspace."""

    code = "config_error"


class AuthError(ConfigError):
    """Missing or rejected credentials (no key, HTTP 401/403)."""

    code = "auth_error"


class ProviderError(SwarmchatError):
    """The model provider kept failing after retries (429, 5xx, connection, truncation)."""

    code = "provider_error"

    def __init__(self, message: str, hint: str | None = None, *, retryable: bool = True) -> None:
        super().__init__(message, hint)
        self.retryable = retryable


class TurnLimitError(SwarmchatError):
    """The entry agent's run hit its turn limit and ended ``incomplete``."""

    code = "turn_limit"


class InterruptedRunError(SwarmchatError):
    """The user pressed Ctrl-C."""

    code = "interrupted"


class ToolError(SwarmchatError):
    """A tool failed; its message goes back to the model as the tool output, not to the CLI."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, or SIGHUP (the terminal closed): unwinds as Ctrl-C does (asyncio passes
    KeyboardInterrupt out of any task to the loop), so that running code is stopped and
    its copies removed; then swarmchat exits with 128 + the signal. Code that treats
    Ctrl-C as "cancel this and go on" lets it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
