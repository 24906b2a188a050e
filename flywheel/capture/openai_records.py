"""The OpenAI chat-completions shape -> capture records: one home for the OpenAI-client wrapper, the
OpenAI importer and `flywheel serve`.

Standard library only (the wrapper is imported by serving processes). Request messages are ChatML with
`content` a string or a list of parts (`{"type": "text", "text": ...}`; image or audio parts are
dropped and counted in `metadata.non_text_parts`); `developer` is a system turn, `function` a tool
turn; an assistant turn that only calls tools has empty content. The interaction id is the
completion's `id`, so feedback can be given by response id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flywheel.capture.records import RowError, format_ts

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
         "tool": "tool", "function": "tool"}


def content_text(content: Any, where: str = "content") -> tuple[str, int]:
    """(text, non-text parts dropped) of an OpenAI message content: a string, None, or a list of parts."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise RowError("bad_messages", f"{where}: expected a string or a list of parts, got {type(content).__name__}")
    texts, dropped = [], 0
    for part in content:
        if isinstance(part, Mapping) and part.get("type") in ("text", "input_text", "output_text") \
                and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, str):
            texts.append(part)
        else:
            dropped += 1
    return "\n".join(texts), dropped


def chat_messages(messages: Any, where: str = "messages") -> tuple[list[dict[str, str]], int]:
    """(ChatML messages, non-text parts dropped) of an OpenAI `messages` list, or RowError(bad_messages)."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise RowError("bad_messages", f"{where}: expected a non-empty list of messages")
    out, dropped = [], 0
    for i, m in enumerate(messages):
        m = _as_dict(m)
        role = ROLES.get(m.get("role")) if isinstance(m.get("role"), str) else None
        if role is None:
            raise RowError("bad_messages", f"{where}[{i}].role: {str(m.get('role'))[:40]!r} is not a chat role")
        text, n = content_text(m.get("content"), f"{where}[{i}].content")
        out.append({"role": role, "content": text})
        dropped += n
    return out, dropped


def _as_dict(obj: Any) -> dict[str, Any]:
    """A pydantic model of the openai package (or a mapping) as a plain dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(exclude_unset=False)
    raise RowError("wrong_type", f"expected an object, got {type(obj).__name__}")


def _ident(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def interaction_of_completion(
    request: Mapping[str, Any],
    completion: Any,
    *,
    latency_ms: float | None,
    session_id: str | None = None,
    user_id: str | None = None,
    source: str = "openai",
) -> dict[str, Any]:
    """The `CaptureWriter.log_interaction` arguments of one chat completion (`request` holds the create
    call's parameters, at least `messages`), or RowError. Session and user come from the arguments,
    else the request's `metadata` (`session_id`, `user_id`), else its `user` / `safety_identifier`."""
    response = _as_dict(completion)
    completion_id = _ident(response.get("id"))
    if completion_id is None:
        raise RowError("missing_id", "response.id: missing")
    messages, dropped = chat_messages(request.get("messages"), "request.messages")
    choices = response.get("choices") or []
    if not choices:
        raise RowError("missing_field", "response.choices: empty")
    choice = _as_dict(choices[0])
    message = _as_dict(choice.get("message") or {})
    output, n = content_text(message.get("content"), "response.choices[0].message.content")
    created = response.get("created")
    if not isinstance(created, (int, float)) or isinstance(created, bool):
        raise RowError("bad_timestamp", f"response.created: expected epoch seconds, got {str(created)[:40]!r}")
    meta = _as_dict(request.get("metadata") or {})
    usage = _as_dict(response.get("usage") or {})
    metadata = {
        "source": source, "response_id": completion_id, "request_model": request.get("model"),
        "finish_reason": choice.get("finish_reason"), "input_tokens": usage.get("prompt_tokens"),
        "output_tokens": usage.get("completion_tokens"), "tool_calls": len(message.get("tool_calls") or []) or None,
        "non_text_parts": (dropped + n) or None, "latency_unknown": True if latency_ms is None else None,
    }
    return {
        "interaction_id": completion_id,
        "ts": format_ts(float(created)),
        "session_id": session_id or _ident(meta.get("session_id")) or _ident(request.get("user")) or completion_id,
        "user_id": user_id or _ident(meta.get("user_id")) or _ident(request.get("user"))
        or _ident(request.get("safety_identifier")) or "anonymous",
        "model_version": _ident(response.get("model")) or _ident(request.get("model")) or "unknown",
        "messages": messages,
        "output": output,
        "latency_ms": float(latency_ms or 0.0),
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }
