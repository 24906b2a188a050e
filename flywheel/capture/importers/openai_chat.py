"""OpenAI chat completions: request/response JSONL and stored-completions exports.

Rows (a JSON array, a list page `{"object": "list", "data": [...]}`, or JSON Lines), each either
- `{"request": {<chat.completions.create parameters>}, "response": {<ChatCompletion>}}`, optionally with
  `latency_ms`, `session_id`, `user_id` (what an app logging its calls writes); or
- a stored completion (`client.chat.completions.list()` items, `object: "chat.completion"`) with its
  input messages under `messages`: the page `client.chat.completions.messages.list(id)` returns, or
  its `data` list. Its `metadata` (`session_id`, `user_id`) names the session and user.
The interaction id is the completion id (`chatcmpl-...`), the one the OpenAI wrapper logs, so
importing traffic the wrapper already captured adds nothing. Stored completions do not say how long
the call took: `latency_ms` is 0 with `metadata.latency_unknown`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flywheel.capture.importers.common import Row, as_row_error, error_row, interaction_row, json_rows
from flywheel.capture.openai_records import interaction_of_completion
from flywheel.capture.records import RowError

KIND = "openai"


def rows(path: Path) -> Iterator[Row]:
    for number, obj in json_rows(path):
        if isinstance(obj, RowError):
            yield error_row(number, "", obj)
            continue
        try:
            yield interaction_row(number, obj, _interaction(obj))
        except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
            yield error_row(number, obj, as_row_error(exc))


def _interaction(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RowError("not_an_object", f"expected an object, got {type(obj).__name__}")
    if isinstance(obj.get("request"), dict) and isinstance(obj.get("response"), dict):
        latency = obj.get("latency_ms")
        return interaction_of_completion(
            obj["request"], obj["response"], latency_ms=latency if isinstance(latency, (int, float)) else None,
            session_id=obj.get("session_id"), user_id=obj.get("user_id"))
    if obj.get("object") == "chat.completion":
        messages = obj.get("messages")
        if isinstance(messages, dict):
            messages = messages.get("data")
        if not messages:
            raise RowError("missing_field", "messages: a stored completion needs its input messages "
                                            "(client.chat.completions.messages.list(id))")
        request = {"messages": messages, "model": obj.get("model"), "metadata": obj.get("metadata") or {}}
        return interaction_of_completion(request, obj, latency_ms=None)
    raise RowError("unknown_shape", "expected {request, response} or a stored chat.completion")
