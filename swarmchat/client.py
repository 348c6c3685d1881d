"""The only module that knows the OpenAI wire format.

Streams one Chat Completion through the official ``openai`` client, assembles text and
tool-call deltas, and retries what is worth retrying (429 honouring Retry-After, 5xx,
dropped connections, truncated streams) with exponential backoff. The SDK's own retries
are off because they cannot see a stream that breaks half-way.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import openai

from swarmchat.environment import LOCAL_HOSTS, ProviderSettings
from swarmchat.errors import AuthError, ConfigError, ProviderError
from swarmchat.events import Usage
from swarmchat.messages import ChatMessage, ChatRequest, Completion, OnDelta, OnRetry, ToolCall

_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "h11", "anyio", "ssl")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # first try + 3 retries
    base_delay: float = 1.0
    max_delay: float = 30.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """``SWARMCHAT_MAX_RETRIES`` / ``SWARMCHAT_RETRY_BASE_DELAY`` tune it (tests, CI)."""
        try:
            retries = int(os.environ.get("SWARMCHAT_MAX_RETRIES", "3"))
            base = float(os.environ.get("SWARMCHAT_RETRY_BASE_DELAY", "1.0"))
        except ValueError:
            raise ConfigError(
                "SWARMCHAT_MAX_RETRIES / SWARMCHAT_RETRY_BASE_DELAY must be numbers",
                "e.g. SWARMCHAT_MAX_RETRIES=3 SWARMCHAT_RETRY_BASE_DELAY=1",
            ) from None
        return cls(attempts=max(1, retries + 1), base_delay=max(0.0, base))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), 60.0)
        backoff = self.base_delay * (2 ** (attempt - 1))
        return float(min(backoff * (0.75 + random.random() / 2), self.max_delay))


@dataclass(frozen=True)
class Timeouts:
    """How long to wait on the provider, each named after its variable in errors:
    connecting, the first streamed chunk (a local server's prompt prefill can take
    minutes, so the default is higher there), and silence between chunks."""

    connect: float = 10.0
    first_byte: float = 60.0
    idle: float = 30.0

    @classmethod
    def from_env(cls, base_url: str | None = None) -> Timeouts:
        local = (urlparse(base_url).hostname or "") in LOCAL_HOSTS if base_url else False
        legacy = os.environ.get("SWARMCHAT_TIMEOUT", "")  # before these three existed
        first_default = legacy or ("300" if local else "60")
        try:
            return cls(
                connect=float(os.environ.get("SWARMCHAT_CONNECT_TIMEOUT", "10")),
                first_byte=float(os.environ.get("SWARMCHAT_FIRST_BYTE_TIMEOUT", first_default)),
                idle=float(os.environ.get("SWARMCHAT_IDLE_TIMEOUT", "30")),
            )
        except ValueError:
            raise ConfigError(
                "SWARMCHAT_CONNECT_TIMEOUT / _FIRST_BYTE_TIMEOUT / _IDLE_TIMEOUT must be seconds",
                "e.g. SWARMCHAT_FIRST_BYTE_TIMEOUT=300 for a slow local model",
            ) from None


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIChatClient:
    """A :class:`swarmchat.messages.ModelClient` over OpenAI-compatible Chat Completions."""

    def __init__(
        self,
        settings: ProviderSettings,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy.from_env()
        self.label = settings.label
        self.timeouts = t = timeouts or Timeouts.from_env(settings.base_url)
        # httpx's own read timeout is only a backstop: the stream is timed in _assemble.
        timeout = openai.Timeout(max(t.first_byte, t.idle) + 5, connect=t.connect)
        self._client: openai.AsyncOpenAI
        if settings.kind == "azure":
            self._client = openai.AsyncAzureOpenAI(
                azure_endpoint=settings.azure_endpoint or "",
                api_key=settings.api_key,
                api_version=settings.api_version,
                max_retries=0,
                timeout=timeout,
            )
        else:
            self._client = openai.AsyncOpenAI(
                api_key=settings.api_key,
                base_url=settings.base_url,
                max_retries=0,
                timeout=timeout,
            )

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(self, request: ChatRequest, on_delta: OnDelta, on_retry: OnRetry) -> Completion:
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await self._stream_once(request, on_delta)
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.retry.attempts:
                    break
                delay = self.retry.delay(attempt, exc.retry_after)
                on_retry(last, attempt, delay)
                await asyncio.sleep(delay)
        tries = f"{self.retry.attempts} attempt{'s' * (self.retry.attempts != 1)}"
        raise ProviderError(
            f"model call failed after {tries}: {last}",
            f"provider: {self.label}; try again later or check the server",
        )

    async def _stream_once(self, request: ChatRequest, on_delta: OnDelta) -> Completion:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [_to_wire(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.first_byte
        try:
            try:
                stream = await asyncio.wait_for(
                    self._client.chat.completions.create(**kwargs), self.timeouts.first_byte
                )
            except TimeoutError:
                raise self._silent("first_byte") from None
            async with stream:
                return await _assemble(stream, on_delta, lambda first: self._wait(loop, deadline, first))
        except openai.APIStatusError as exc:
            raise _map_status(exc, request.model) from None
        except openai.APITimeoutError as exc:
            if type(exc.__cause__).__name__ == "ConnectTimeout":
                raise self._silent("connect") from None
            raise _Retryable(f"timed out: {_cause(exc)}") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection error: {_cause(exc)}") from None
        except openai.APIError as exc:  # error object sent inside the stream
            raise _Retryable(f"provider error in stream: {exc.message}") from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in _TRANSPORT_MODULES or isinstance(exc, OSError):
                raise _Retryable(f"connection dropped: {_cause(exc)}") from None
            raise

    def _wait(
        self, loop: asyncio.AbstractEventLoop, deadline: float, first: bool
    ) -> tuple[float, _Retryable]:
        """How long the next chunk may take, and the error if it does not come."""
        if first:
            return max(deadline - loop.time(), 0.0), self._silent("first_byte")
        return self.timeouts.idle, self._silent("idle")

    def _silent(self, which: str) -> _Retryable:
        seconds = getattr(self.timeouts, which)
        what = {
            "connect": "could not connect within",
            "first_byte": "no answer within",
            "idle": "the answer stopped for",
        }[which]
        return _Retryable(f"{what} {seconds:g} s (SWARMCHAT_{which.upper()}_TIMEOUT)")


async def _chunks(stream: Any, wait: Any) -> Any:
    """The stream's chunks, each within the time ``wait(first)`` allows."""
    iterator = stream.__aiter__()
    first = True
    while True:
        seconds, error = wait(first)
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise error from None
        first = False
        yield chunk


async def _assemble(stream: Any, on_delta: OnDelta, wait: Any = None) -> Completion:
    """Join streamed chunks into one :class:`Completion`; a missing finish is a truncation."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = Usage()
    finish: str | None = None
    async for chunk in _chunks(stream, wait) if wait else stream:
        if getattr(chunk, "usage", None):
            usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        for choice in chunk.choices or ():
            delta = choice.delta
            if delta is not None and delta.content:
                text.append(delta.content)
                on_delta(delta.content)
            for tc in (delta.tool_calls or ()) if delta is not None else ():
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": []})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        slot["name"] += tc.function.name
                    if tc.function.arguments:
                        slot["arguments"].append(tc.function.arguments)
            if choice.finish_reason:
                finish = choice.finish_reason
    if finish is None:
        raise _Retryable("stream ended before the model finished (truncated response)")
    tool_calls = tuple(
        ToolCall(id=slot["id"] or f"call_{i}", name=slot["name"], arguments="".join(slot["arguments"]))
        for i, slot in sorted(calls.items())
    )
    return Completion("".join(text), tool_calls, usage, finish)


def _map_status(exc: openai.APIStatusError, model: str) -> Exception:
    status = exc.status_code
    detail = _error_detail(exc)
    if status in (401, 403):
        return AuthError(
            f"the provider rejected the credentials (HTTP {status}): {detail}",
            "check OPENAI_API_KEY (or AZURE_OPENAI_API_KEY) and the endpoint",
        )
    if status == 404:
        return ConfigError(
            f"model '{model}' or endpoint not found (HTTP 404): {detail}",
            "check --model / SWARMCHAT_MODEL / agents.yaml and OPENAI_BASE_URL",
        )
    if status == 429 or status >= 500 or status == 408:
        retry_after = None
        header = exc.response.headers.get("retry-after") if exc.response is not None else None
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        return _Retryable(f"HTTP {status}: {detail}", retry_after)
    return ProviderError(f"the provider refused the request (HTTP {status}): {detail}", retryable=False)


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:300]
    return str(exc.message)[:300]


def _cause(exc: BaseException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = str(root) or type(root).__name__
    return text.splitlines()[0][:200]


def _to_wire(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out
