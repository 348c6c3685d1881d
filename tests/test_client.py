"""The real openai client over real HTTP against the scripted server: streaming, tool-call
deltas, usage, and every injectable fault."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakeserver import FakeOpenAI, Reply, call

from swarmchat.client import OpenAIChatClient, RetryPolicy, Timeouts
from swarmchat.environment import ProviderSettings
from swarmchat.errors import AuthError, ProviderError
from swarmchat.messages import ChatMessage, ChatRequest, Completion, ToolSpec

REQUEST = ChatRequest(
    "test-model",
    [ChatMessage("system", 'You are "a", test.'), ChatMessage("user", "hi")],
    [ToolSpec("File", "write", {"type": "object", "properties": {}})],
)


def complete(
    fake: FakeOpenAI, attempts: int = 3, timeouts: Timeouts | None = None
) -> tuple[Completion, list[str], list[tuple]]:
    deltas: list[str] = []
    retries: list[tuple] = []

    async def go() -> Completion:
        client = OpenAIChatClient(
            ProviderSettings("openai", "sk-test", base_url=fake.base_url),
            RetryPolicy(attempts=attempts, base_delay=0.01),
            timeouts or Timeouts(connect=5, first_byte=10, idle=10),
        )
        try:
            return await client.complete(REQUEST, deltas.append, lambda e, n, d: retries.append((e, n, d)))
        finally:
            await client.aclose()

    return asyncio.run(go()), deltas, retries


def test_streams_text_and_usage(fake: FakeOpenAI) -> None:
    fake.script("a", Reply(text="Hello there, streaming world!", usage=(11, 7)))
    result, deltas, retries = complete(fake)
    assert result.text == "Hello there, streaming world!" and len(deltas) > 3
    assert result.usage.prompt_tokens == 11 and result.usage.completion_tokens == 7
    assert result.finish_reason == "stop" and not retries
    body = fake.requests[0].body
    assert body["stream"] is True and body["tools"][0]["function"]["name"] == "File"


def test_assembles_tool_calls_split_over_chunks(fake: FakeOpenAI) -> None:
    fake.script(
        "a",
        Reply(
            text="thinking",
            tool_calls=[
                call("File", chain_of_thought="c", file_name="a.py", body="print('x' * 3)\n"),
                call("ExecutePyFile", file_name="a.py"),
            ],
        ),
    )
    result, _, _ = complete(fake)
    assert [c.name for c in result.tool_calls] == ["File", "ExecutePyFile"]
    assert '"body": "print(\'x\' * 3)\\n"' in result.tool_calls[0].arguments
    assert result.tool_calls[1].arguments == '{"file_name": "a.py"}'
    assert result.tool_calls[0].id != result.tool_calls[1].id


def test_malformed_arguments_are_passed_through_raw(fake: FakeOpenAI) -> None:
    fake.script("a", Reply(tool_calls=[("File", '{"file_name": "a.py", "bo')]))
    result, _, _ = complete(fake)
    assert result.tool_calls[0].arguments == '{"file_name": "a.py", "bo'


@pytest.mark.parametrize("fault", ["429", "500", "drop", "drop_mid", "truncate"])
def test_retries_transient_faults(fake: FakeOpenAI, fault: str) -> None:
    fake.script("a", Reply(fault=fault, text="partial text here"), Reply(text="recovered"))
    result, _, retries = complete(fake)
    assert result.text == "recovered"
    assert len(retries) == 1 and retries[0][1] == 1
    assert len(fake.requests) == 2


def test_429_honours_retry_after(fake: FakeOpenAI) -> None:
    fake.script("a", Reply(fault="429", retry_after="0.3"), Reply(text="ok"))
    _, _, retries = complete(fake)
    assert retries[0][2] == pytest.approx(0.3)
    assert fake.requests[1].started - fake.requests[0].started >= 0.29


@pytest.mark.parametrize("fault", ["429", "500", "drop", "drop_mid", "truncate"])
def test_gives_up_after_retries_with_clear_error(fake: FakeOpenAI, fault: str) -> None:
    fake.script("a", *[Reply(fault=fault, text="some text") for _ in range(3)])
    with pytest.raises(ProviderError) as info:
        complete(fake, attempts=3)
    assert "failed after 3 attempts" in info.value.message
    assert len(fake.requests) == 3


def test_a_single_attempt_is_named_in_the_singular(fake: FakeOpenAI) -> None:
    fake.script("a", Reply(fault="500"))
    with pytest.raises(ProviderError) as info:
        complete(fake, attempts=1)
    assert "failed after 1 attempt:" in info.value.message


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("hang", "no answer within 0.4 s (SWARMCHAT_FIRST_BYTE_TIMEOUT)"),
        ("stall", "the answer stopped for 0.4 s (SWARMCHAT_IDLE_TIMEOUT)"),
    ],
)
def test_a_silent_server_is_given_up_after_its_timeout(fake: FakeOpenAI, fault: str, message: str) -> None:
    fake.script("a", *[Reply(fault=fault, text="some words here") for _ in range(2)])
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        complete(fake, attempts=2, timeouts=Timeouts(connect=1, first_byte=0.4, idle=0.4))
    assert message in info.value.message and "after 2 attempts" in info.value.message
    assert time.monotonic() - started < 3


def test_timeouts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SWARMCHAT_TIMEOUT", "SWARMCHAT_FIRST_BYTE_TIMEOUT", "SWARMCHAT_IDLE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert Timeouts.from_env("https://api.openai.com/v1") == Timeouts(10, 60, 30)
    assert Timeouts.from_env("http://localhost:11434/v1").first_byte == 300  # prefill on a laptop
    monkeypatch.setenv("SWARMCHAT_TIMEOUT", "90")  # the older single setting
    assert Timeouts.from_env(None).first_byte == 90
    monkeypatch.setenv("SWARMCHAT_FIRST_BYTE_TIMEOUT", "45")
    monkeypatch.setenv("SWARMCHAT_IDLE_TIMEOUT", "5")
    assert Timeouts.from_env(None) == Timeouts(10, 45, 5)


def test_401_is_an_auth_error_without_retry(fake: FakeOpenAI) -> None:
    fake.script("a", Reply(fault="401"))
    with pytest.raises(AuthError) as info:
        complete(fake)
    assert "HTTP 401" in info.value.message and "Incorrect API key" in info.value.message
    assert len(fake.requests) == 1
