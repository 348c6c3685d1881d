"""Provider settings from the environment, secret hygiene, and Azure over HTTP."""

from __future__ import annotations

import pytest
from clitools import invoke, run_cli
from fakeserver import FakeOpenAI, Reply

from swarmchat.environment import Redactor, is_secret_name, provider_from_env, secret_values
from swarmchat.errors import AuthError


def test_openai_settings_and_local_server_without_key() -> None:
    s = provider_from_env({"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "https://x/v1"})
    assert (s.kind, s.api_key, s.base_url) == ("openai", "sk-1", "https://x/v1")
    local = provider_from_env({"OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert local.api_key == "not-needed"
    assert "sk-1" not in repr(s)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "OPENAI_API_KEY"),
        ({"OPENAI_BASE_URL": "https://remote.example/v1"}, "OPENAI_API_KEY"),
        ({"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"}, "AZURE_OPENAI_API_KEY"),
        (
            {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k"},
            "OPENAI_API_VERSION",
        ),
    ],
)
def test_missing_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(AuthError) as info:
        provider_from_env(env)
    assert variable in (info.value.hint or "")


def test_secret_names_and_redaction() -> None:
    for name in ("OPENAI_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "AZURE_OPENAI_ENDPOINT", "MY_SECRET_X"):
        assert is_secret_name(name)
    for name in ("PATH", "HOME", "LANG", "KEYBOARD"):
        assert not is_secret_name(name)
    env = {"OPENAI_API_KEY": "sk-abcdefgh123", "OPENAI_API_VERSION": "2024-10-21", "SHORT_KEY": "abc"}
    assert secret_values(env) == ["sk-abcdefgh123"]
    assert Redactor(secret_values(env))("key sk-abcdefgh123 on 2024-10-21") == "key [redacted] on 2024-10-21"


def test_azure_openai_end_to_end(fake: FakeOpenAI, cli_env, workspace) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("OPENAI_")}
    env.update(
        AZURE_OPENAI_ENDPOINT=fake.base_url.removesuffix("/v1"),
        AZURE_OPENAI_API_KEY="azure-secret-key",
        OPENAI_API_VERSION="2024-10-21",
    )
    fake.script("user_proxy", Reply(text="hello from azure"))
    r = invoke(["ask", "hi", "-m", "my-deployment"], env, workspace)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from azure\n"
    assert fake.paths[0].startswith("/openai/deployments/my-deployment/chat/completions")
    assert "api-version=2024-10-21" in fake.paths[0]


def test_fake_server_non_streaming(fake: FakeOpenAI) -> None:
    import openai

    fake.script("a", Reply(text="plain"))
    client = openai.OpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
    out = client.chat.completions.create(
        model="m", messages=[{"role": "system", "content": 'You are "a".'}, {"role": "user", "content": "x"}]
    )
    assert out.choices[0].message.content == "plain" and out.usage is not None


@pytest.mark.parametrize("url", ["localhost:11434", "127.0.0.1:8080/v1", "ftp://host/v1", "http://"])
def test_a_base_url_that_is_no_url_is_a_config_error(fake: FakeOpenAI, cli_env, workspace, url) -> None:
    r = run_cli(["ask", "hi"], {**cli_env, "OPENAI_BASE_URL": url}, workspace)
    assert r.returncode == 3 and f"OPENAI_BASE_URL is not a valid URL: {url!r}" in r.stderr, r.stderr
    assert "hint: set it to a full URL such as http://localhost:11434/v1" in r.stderr
    assert fake.requests == []
