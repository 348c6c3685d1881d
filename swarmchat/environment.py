"""Provider settings, user-data paths and secret hygiene, all read from the environment.

Kept free of heavy imports: the CLI checks for a key and fails fast (exit 3) before
``openai`` is imported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from swarmchat.errors import AuthError, ConfigError

_SECRET_NAME = re.compile(r"(_KEY$|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|^OPENAI_|^AZURE_)", re.I)
# Values worth redacting: credentials only (not base URLs or API versions, which are
# ordinary text a model may legitimately repeat).
_CREDENTIAL_NAME = re.compile(r"(_KEY$|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def load_dotenv_file(cwd: Path | None = None) -> None:
    """Load ``./.env`` without overriding variables already set in the shell."""
    path = (cwd or Path.cwd()) / ".env"
    if path.is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def is_secret_name(name: str) -> bool:
    """True for variables executed code must never see (``*_KEY``, ``*TOKEN*``, ...)."""
    return bool(_SECRET_NAME.search(name))


def scrubbed_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` without secrets or provider settings."""
    return {k: v for k, v in env.items() if not is_secret_name(k)}


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of credential variables long enough to be worth redacting, longest first."""
    values = {v for k, v in env.items() if _CREDENTIAL_NAME.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Replaces known secret values with ``[redacted]`` in anything stored or shown."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


@dataclass(frozen=True)
class ProviderSettings:
    """How to reach the model: OpenAI, Azure OpenAI or any OpenAI-compatible server."""

    kind: str  # "openai" or "azure"
    api_key: str
    base_url: str | None = None
    azure_endpoint: str | None = None
    api_version: str | None = None

    def __repr__(self) -> str:  # never show the key, even in a debug traceback
        return f"ProviderSettings(kind={self.kind!r}, base_url={self.base_url!r})"

    @property
    def label(self) -> str:
        if self.kind == "azure":
            return f"Azure OpenAI at {self.azure_endpoint}"
        return self.base_url or "api.openai.com"


def provider_from_env(env: Mapping[str, str] | None = None) -> ProviderSettings:
    """Resolve provider settings, or raise :class:`AuthError` naming the variable to set."""
    env = os.environ if env is None else env
    endpoint = env.get("AZURE_OPENAI_ENDPOINT", "").strip()
    if endpoint:
        key = env.get("AZURE_OPENAI_API_KEY", "").strip()
        if not key:
            raise AuthError(
                "AZURE_OPENAI_ENDPOINT is set but no key was found",
                "set AZURE_OPENAI_API_KEY (in the shell or in ./.env)",
            )
        version = env.get("OPENAI_API_VERSION", "").strip()
        if not version:
            raise AuthError(
                "Azure OpenAI needs an API version",
                "set OPENAI_API_VERSION, e.g. OPENAI_API_VERSION=2024-10-21",
            )
        _check_url("AZURE_OPENAI_ENDPOINT", endpoint)
        return ProviderSettings("azure", key, azure_endpoint=endpoint, api_version=version)
    base_url = env.get("OPENAI_BASE_URL", "").strip() or None
    if base_url:
        _check_url("OPENAI_BASE_URL", base_url)
    key = env.get("OPENAI_API_KEY", "").strip()
    if not key:
        if base_url and (urlparse(base_url).hostname or "") in LOCAL_HOSTS:
            key = "not-needed"  # local servers (Ollama, vLLM, llama.cpp) accept any key
        else:
            raise AuthError(
                "no API key found",
                "set OPENAI_API_KEY (in the shell or in ./.env), or OPENAI_BASE_URL for a "
                "local OpenAI-compatible server",
            )
    return ProviderSettings("openai", key, base_url=base_url)


def _check_url(name: str, url: str) -> None:
    """A URL without ``http://`` or ``https://`` (``localhost:11434``) or without a host is
    a setting to fix, not a server that is down: no retries for it."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(
            f"{name} is not a valid URL: {url!r}",
            "set it to a full URL such as http://localhost:11434/v1 or https://api.openai.com/v1",
        )


def user_home(env: Mapping[str, str] | None = None) -> Path:
    """Where swarmchat keeps its database and history (``SWARMCHAT_HOME`` relocates it)."""
    env = os.environ if env is None else env
    override = env.get("SWARMCHAT_HOME", "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("swarmchat", appauthor=False))


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` readable by the user only (it holds conversations); a path that
    cannot be one (a file, a read-only place) is a configuration error naming it."""
    hint = "set SWARMCHAT_HOME to a directory you can write to"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise ConfigError(f"the data directory {path} is a file, not a directory", hint) from None
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {path}: {exc.strerror}", hint) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"the data directory {path} is not writable", hint)
    return path


def debug_enabled() -> bool:
    return os.environ.get("SWARMCHAT_DEBUG", "") not in ("", "0")


def positive_int(name: str, default: int) -> int:
    """A count or size from the environment: ``default`` when unset or not a number,
    never below 1 (a limit of 0 would refuse everything)."""
    try:
        return max(1, int(os.environ.get(name, "")))
    except ValueError:
        return default
