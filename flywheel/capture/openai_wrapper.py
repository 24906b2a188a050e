"""Capture for apps that call models with the `openai` package: two lines.

    from flywheel.capture.openai_wrapper import capture_openai
    client = capture_openai(OpenAI(...), CaptureWriter(home))

Every `client.chat.completions.create(...)` (sync or async client; streamed or not) is logged as an
interaction: the request's messages, the answer, model, latency, session and user, with the
completion id as interaction id; `client.feedback(response_id, "thumbs_down")` logs feedback for it.
Session and user: per call from `metadata={"session_id", "user_id"}` or `user=`, else the wrapper's
`session_id` / `user_id` (a string, or a function called per request, e.g. reading a contextvar).
Everything else on the client passes through untouched. Logging never breaks the app: a record that
cannot be logged is counted in `capture_errors` and warned about.

Light: imports neither torch nor pandas, nor `openai` itself (it wraps the client it is given).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flywheel.capture.openai_records import interaction_of_completion
from flywheel.capture.records import format_ts
from flywheel.capture.sdk import CaptureWriter

log = logging.getLogger(__name__)
Who = str | Callable[[], str | None] | None


class CapturedOpenAI:
    """An OpenAI client whose chat completions are logged through `writer`."""

    def __init__(self, client: Any, writer: CaptureWriter, *, session_id: Who = None, user_id: Who = None) -> None:
        self._client = client
        self._writer = writer
        self._session_id, self._user_id = session_id, user_id
        self.capture_errors = 0
        self.chat = _Passthrough(client.chat, completions=_Completions(self, client.chat.completions))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def feedback(self, response_id: str, kind: str, *, text: str | None = None) -> None:
        """Log the user's reaction (copy, resubmit, correction with `text`, thumbs_up, thumbs_down)."""
        self._writer.log_feedback(response_id, kind, text=text)

    def _log(self, request: Mapping[str, Any], completion: Any, latency_ms: float) -> None:
        try:
            record = interaction_of_completion(
                request, completion, latency_ms=latency_ms, session_id=_who(self._session_id),
                user_id=_who(self._user_id), source="openai_wrapper")
            record["ts"] = format_ts()  # when the answer came back (`created` has whole seconds only)
            self._writer.log_interaction(**record)
        except Exception as exc:  # noqa: BLE001 - capture must never break the app's call
            self.capture_errors += 1
            log.warning("flywheel capture: chat completion not logged (%s: %s)", type(exc).__name__, exc)


def _who(value: Who) -> str | None:
    return value() if callable(value) else value


class _Passthrough:
    """An attribute namespace (`client.chat`) with some attributes replaced."""

    def __init__(self, inner: Any, **replaced: Any) -> None:
        self._inner = inner
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Completions(_Passthrough):
    def __init__(self, owner: CapturedOpenAI, inner: Any) -> None:
        super().__init__(inner)
        self._owner = owner

    def create(self, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = self._inner.create(**kwargs)
        if inspect.isawaitable(result):
            return self._finish_async(result, kwargs, start)
        if kwargs.get("stream"):
            return _Stream(result, self._owner, kwargs, start)
        self._owner._log(kwargs, result, (time.perf_counter() - start) * 1000)
        return result

    async def _finish_async(self, pending: Any, kwargs: dict[str, Any], start: float) -> Any:
        result = await pending
        if kwargs.get("stream"):
            return _AsyncStream(result, self._owner, kwargs, start)
        self._owner._log(kwargs, result, (time.perf_counter() - start) * 1000)
        return result


class _StreamAccumulator:
    """Builds a completion from streamed chunks; logs it when the stream ends."""

    def __init__(self, owner: CapturedOpenAI, request: dict[str, Any], start: float) -> None:
        self.owner, self.request, self.start = owner, request, start
        self.parts: list[str] = []
        self.last: Any = None
        self.finish: str | None = None
        self.logged = False

    def add(self, chunk: Any) -> None:
        self.last = chunk
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) == 0:
                delta = getattr(choice, "delta", None)
                if delta is not None and getattr(delta, "content", None):
                    self.parts.append(delta.content)
                self.finish = getattr(choice, "finish_reason", None) or self.finish

    def done(self) -> None:
        if self.logged or self.last is None:
            return
        self.logged = True
        usage = getattr(self.last, "usage", None)
        completion = {"id": getattr(self.last, "id", None), "created": getattr(self.last, "created", None),
                      "model": getattr(self.last, "model", None), "usage": usage.model_dump() if usage else None,
                      "choices": [{"message": {"role": "assistant", "content": "".join(self.parts)},
                                   "finish_reason": self.finish}]}
        self.owner._log(self.request, completion, (time.perf_counter() - self.start) * 1000)


class _Stream:
    def __init__(self, inner: Any, owner: CapturedOpenAI, request: dict[str, Any], start: float) -> None:
        self._inner, self._acc = inner, _StreamAccumulator(owner, request, start)

    def __iter__(self) -> Iterator[Any]:
        try:
            for chunk in self._inner:
                self._acc.add(chunk)
                yield chunk
        finally:
            self._acc.done()

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._acc.done()
        close = getattr(self._inner, "close", None)
        if close:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AsyncStream:
    def __init__(self, inner: Any, owner: CapturedOpenAI, request: dict[str, Any], start: float) -> None:
        self._inner, self._acc = inner, _StreamAccumulator(owner, request, start)

    async def __aiter__(self) -> Any:
        try:
            async for chunk in self._inner:
                self._acc.add(chunk)
                yield chunk
        finally:
            self._acc.done()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def capture_openai(client: Any, writer: CaptureWriter, *, session_id: Who = None, user_id: Who = None) -> CapturedOpenAI:
    """`client` (an `openai.OpenAI` or `AsyncOpenAI`) with every chat completion logged through `writer`."""
    return CapturedOpenAI(client, writer, session_id=session_id, user_id=user_id)
