"""One error hierarchy; the CLI maps each class to an exit code in one place.

Every error carries a one-line message and an optional hint, because users see them as
``swarmchat: error: <message>`` followed by ``hint: <hint>`` and never as a traceback.
"""

from __future__ import annotations


class SwarmchatError(Exception):
    """Base class: anything swarmchat reports to the user as a clean, one-line error."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class RunFailedError(SwarmchatError):
    """The entry agent's run ended as ``failed``."""

    exit_code = 1


class UsageError(SwarmchatError):
    """The command line itself is wrong (bad option, missing prompt)."""

    exit_code = 2


class ConfigError(SwarmchatError):
    """A configuration problem the user must fix: agents file, environment, workspace."""

    exit_code = 3


class AuthError(ConfigError):
    """Missing or rejected credentials (no key, HTTP 401/403)."""

    exit_code = 3


class ProviderError(SwarmchatError):
    """The model provider kept failing after retries (429, 5xx, connection, truncation)."""

    exit_code = 4

    def __init__(self, message: str, hint: str | None = None, *, retryable: bool = True) -> None:
        super().__init__(message, hint)
        self.retryable = retryable


class TurnLimitError(SwarmchatError):
    """The entry agent's run hit its turn limit and ended ``incomplete``."""

    exit_code = 5


class InterruptedRunError(SwarmchatError):
    """The user pressed Ctrl-C."""

    exit_code = 130


class ToolError(SwarmchatError):
    """A tool failed; its message goes back to the model as the tool output, not to the CLI."""
