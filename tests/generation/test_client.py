"""The OpenAI-compatible client over real HTTP: replies, usage, retries, 429 Retry-After, errors."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from flywheel.config import EndpointConfig
from flywheel.core.errors import InputError
from flywheel.generation.client import ChatClient, EndpointError, _retry_after, client_for


def test_chat_reply_usage_and_auth(openai_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = openai_server
    with ChatClient(url, "teacher-x", api_key="k1") as client:
        reply = client.chat([{"role": "user", "content": "hello"}], max_tokens=20)
    assert reply.content == "TEACHER ANSWER: hello" and reply.finish_reason == "stop"
    assert client.usage.requests == 1 and client.usage.prompt_tokens == 50 and client.usage.tokens > 50
    assert seen[-1]["auth"] == "Bearer k1" and seen[-1]["body"]["max_tokens"] == 20


def test_429_waits_out_retry_after_then_succeeds(openai_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = openai_server
    waits: list[float] = []
    with ChatClient(url, "gen-limited", max_retries=2, backoff_s=5.0, sleep=waits.append) as client:
        reply = client.chat([{"role": "user", "content": "Write 1 new examples"}])
    assert reply.content and "examples" in reply.content
    assert client.usage.rate_limited == 1 and client.usage.retries == 1
    assert waits == [0.05]  # the server's Retry-After, not the 5 s backoff


def test_500_retried_with_backoff_then_error(openai_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = openai_server
    waits: list[float] = []
    client = ChatClient(url, "gen-broken", max_retries=2, backoff_s=0.5, sleep=waits.append)
    with pytest.raises(EndpointError, match="HTTP 500: upstream exploded") as info:
        client.chat([{"role": "user", "content": "x"}])
    assert info.value.reason == "http_500" and url in str(info.value)
    assert waits == [0.5, 1.0] and len([s for s in seen if s["model"] == "gen-broken"]) == 3


def test_retry_after_too_long_fails_at_once(openai_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = openai_server
    client = ChatClient(url, "gen-limited", max_retries=3, max_wait_s=0.01, sleep=lambda s: None)
    with pytest.raises(EndpointError, match="exceeds") as info:
        client.chat([{"role": "user", "content": "x"}])
    assert info.value.reason == "rate_limited" and client.usage.requests == 1


def test_unreachable_endpoint_names_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=0, timeout_s=2)
    with pytest.raises(EndpointError, match=f"127.0.0.1:{port}/v1/chat/completions") as info:
        client.chat([{"role": "user", "content": "x"}])
    assert info.value.reason == "network"


def test_prompt_logprobs_drop_generated_token(openai_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = openai_server
    with ChatClient(url, "ref-lm") as client:
        values = client.prompt_logprobs("one three fives")
    assert values == [-0.25 * (1 + 5), -0.25 * (1 + 5)]  # first token has none; the generated " x" dropped
    assert seen[-1]["path"] == "completions" and seen[-1]["body"]["echo"] is True


def test_retry_after_forms() -> None:
    assert _retry_after("2") == 2.0 and _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait


def test_client_for_reads_the_named_key(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="GEN_KEY_FOR_TEST")
    monkeypatch.delenv("GEN_KEY_FOR_TEST", raising=False)
    with pytest.raises(InputError, match="GEN_KEY_FOR_TEST"):
        client_for(cfg, role="generator")
    monkeypatch.setenv("GEN_KEY_FOR_TEST", "abc")
    with client_for(cfg) as client:
        assert client._client.headers["authorization"] == "Bearer abc"
