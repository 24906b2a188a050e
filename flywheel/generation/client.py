"""The one client of OpenAI-compatible endpoints (vLLM, hosted providers, local servers): chat completions
for generators, teachers and the LLM judge, prompt log-probabilities for the collapse watch's reference model.

A request that fails (HTTP 5xx, 429, a timeout, a network error, a body that is not JSON) is retried up to
`max_retries` times with exponential backoff; a 429's `Retry-After` (seconds or an HTTP date) is waited
out instead, up to `max_wait_s`. Other 4xx fail at once. Every call's tokens (the server's `usage`, else
about 4 characters a token) are added to `usage`, so a caller can hold a token budget.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from flywheel.config import EndpointConfig
from flywheel.core.errors import FlywheelError, InputError

CHARS_PER_TOKEN = 4


class EndpointError(FlywheelError, RuntimeError):
    """An endpoint that kept failing: `reason` is a short code (http_500, rate_limited, timeout, network,
    bad_response, http_4xx), the message names the URL and the last error."""

    def __init__(self, url: str, reason: str, detail: str) -> None:
        super().__init__(f"{url}: {detail}")
        self.url = url
        self.reason = reason
        self.detail = detail


@dataclass
class Usage:
    """What a client has spent: requests sent (retries included), tokens, 429 answers."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rate_limited: int = 0
    retries: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatReply:
    """One chat completion: the reply text (None when the response holds none) and its tokens."""

    content: str | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


def estimate_tokens(text: str) -> int:
    """About 4 characters a token: the count used when a server reports no usage."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatClient:
    """An OpenAI-compatible endpoint at `base_url` serving `model`."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 2, backoff_s: float = 0.5, max_wait_s: float = 60.0,
                 requests_per_minute: float | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.min_interval_s = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.usage = Usage()
        self._sleep = sleep
        self._last_start = -math.inf
        import httpx  # imported on first use: the code location starts faster

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    @property
    def url(self) -> str:
        """The chat completions URL."""
        return self.base_url + "/chat/completions"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _throttle(self) -> None:
        wait = self._last_start + self.min_interval_s - time.monotonic()
        if wait > 0:
            self._sleep(wait)
        self._last_start = time.monotonic()

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST `payload` to `base_url + path` and return the JSON object, retrying as the module says."""
        url = self.base_url + path
        import httpx

        reason, detail = "network", ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2**attempt
            self._throttle()
            self.usage.requests += 1
            try:
                resp = self._client.post(url, json=payload)
            except httpx.TimeoutException as exc:
                reason, detail = "timeout", f"timed out: {type(exc).__name__}"
            except httpx.HTTPError as exc:
                reason, detail = "network", f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 400:
                    try:
                        data = resp.json()
                    except ValueError:
                        data = None
                    if isinstance(data, dict):
                        return data
                    reason, detail = "bad_response", f"HTTP {resp.status_code} body is not a JSON object: {resp.text[:200]!r}"
                elif resp.status_code == 429:
                    self.usage.rate_limited += 1
                    after = _retry_after(resp.headers.get("retry-after"))
                    reason, detail = "rate_limited", f"HTTP 429 (Retry-After {resp.headers.get('retry-after')}): {resp.text[:200]}"
                    if after is not None:
                        if after > self.max_wait_s:
                            raise EndpointError(url, reason, detail + f"; waiting {after:.0f}s exceeds {self.max_wait_s:.0f}s")
                        wait = after
                elif resp.status_code >= 500:
                    reason, detail = f"http_{resp.status_code}", f"HTTP {resp.status_code}: {resp.text[:200]}"
                else:
                    raise EndpointError(url, f"http_{resp.status_code}", f"HTTP {resp.status_code}: {resp.text[:200]}")
            if attempt < self.max_retries:
                self.usage.retries += 1
                self._sleep(min(wait, self.max_wait_s))
        raise EndpointError(url, reason, f"failed after {self.max_retries + 1} attempts: {detail}")

    def chat(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int | None = None,
             **extra: Any) -> ChatReply:
        """One chat completion of `messages` (ChatML)."""
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature, **extra}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        data = self.post("/chat/completions", payload)
        content, finish = None, None
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                content = message["content"]
            finish = choices[0].get("finish_reason")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        prompt = prompt if isinstance(prompt, int) else sum(estimate_tokens(m.get("content") or "") for m in messages)
        completion = completion if isinstance(completion, int) else estimate_tokens(content or "")
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += completion
        return ChatReply(content, prompt, completion, finish if isinstance(finish, str) else None)

    def prompt_logprobs(self, text: str) -> list[float]:
        """The log-probability of each token of `text` under the model after the first (a `/completions`
        request with `echo` and `logprobs`, as vLLM and OpenAI's legacy API serve it)."""
        url = self.base_url + "/completions"
        data = self.post("/completions", {"model": self.model, "prompt": text, "max_tokens": 1, "echo": True,
                                          "logprobs": 0, "temperature": 0})
        try:
            choice = data["choices"][0]
            values = choice["logprobs"]["token_logprobs"]
            offsets = choice["logprobs"].get("text_offset")
        except (KeyError, IndexError, TypeError) as exc:
            raise EndpointError(url, "bad_response", f"no choices[0].logprobs.token_logprobs ({exc!r})") from None
        if not isinstance(values, list):
            raise EndpointError(url, "bad_response", "token_logprobs is not a list")
        if isinstance(offsets, list) and len(offsets) == len(values):  # drop the generated token(s)
            values = [v for v, o in zip(values, offsets, strict=True) if isinstance(o, int) and o < len(text)]
        self.usage.prompt_tokens += len(values)
        return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def client_for(endpoint: EndpointConfig, *, role: str = "endpoint",
               sleep: Callable[[float], None] = time.sleep) -> ChatClient:
    """The client of a configured endpoint; its API key is read now from the env var the config names."""
    key = None
    if endpoint.api_key_env:
        key = os.environ.get(endpoint.api_key_env)
        if not key:
            raise InputError(f"{role} {endpoint.model!r}: env var {endpoint.api_key_env} (api_key_env) is not set")
    return ChatClient(endpoint.base_url, endpoint.model, api_key=key, timeout_s=endpoint.timeout_s,
                      max_retries=endpoint.max_retries, backoff_s=endpoint.backoff_s,
                      requests_per_minute=endpoint.requests_per_minute, sleep=sleep)
