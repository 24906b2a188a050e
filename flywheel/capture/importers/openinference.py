"""OpenInference / Arize Phoenix span exports, with their annotations.

Rows (a JSON array, `{"data": [...]}`, or JSON Lines): spans as Phoenix's REST API returns them
(`GET /v1/projects/{project}/spans`: `context.trace_id/span_id`, `span_kind`, `start_time`,
`end_time`, `attributes`) or as `get_spans_dataframe()` records (flattened `context.span_id`,
`attributes.llm.input_messages`, ...), and span annotations (`GET /v1/projects/{project}/span_annotations`:
`span_id`, `name`, `annotator_kind`, `result: {label, score, explanation}`). Nested and dotted forms are
read alike. Attribute names are the OpenInference semantic conventions': `openinference.span.kind`
(`LLM` spans are interactions), `llm.input_messages.<i>.message.role|content` (or a list of
messages), `llm.output_messages`, `llm.model_name`, `llm.token_count.prompt|completion`,
`session.id`, `user.id`.

Each LLM span is the interaction `openinference:<span id>`. Human annotations (`annotator_kind:
HUMAN`) become feedback: one named `correction` / `corrected_output` / `expected_output` is a
correction whose text is its explanation (or label); otherwise its label or score read as thumbs up /
down (`common.feedback_kind`). LLM and code annotations are evaluations, not user feedback: skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from flywheel.capture.importers.common import (
    SKIP,
    Row,
    as_row_error,
    error_row,
    feedback_kind,
    feedback_row,
    interaction_row,
    json_rows,
    source_id,
)
from flywheel.capture.openai_records import chat_messages
from flywheel.capture.records import RowError

KIND = "openinference"
CORRECTION_NAMES = frozenset({"correction", "corrected_output", "expected_output"})
_INDEXED = re.compile(r"^(llm\.(?:input|output)_messages)\.(\d+)\.(.+)$")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (`{"a": {"b": 1}}` -> `{"a.b": 1}`); lists kept as values."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _attributes(flat: dict[str, Any]) -> dict[str, Any]:
    """The span's attributes (dotted), with indexed message keys gathered into lists of messages."""
    attrs = {k.removeprefix("attributes."): v for k, v in flat.items() if k.startswith("attributes.")}
    lists: dict[str, dict[int, dict[str, Any]]] = {}
    for key in list(attrs):
        found = _INDEXED.match(key)
        if found:
            lists.setdefault(found[1], {}).setdefault(int(found[2]), {})[found[3]] = attrs.pop(key)
    for name, items in lists.items():
        attrs[name] = [items[i] for i in sorted(items)]
    return attrs


def _messages(value: Any, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise RowError("missing_field" if value is None else "bad_messages", f"{name}: expected a list of messages")
    plain = []
    for m in value:
        m = flatten(m) if isinstance(m, dict) else {}
        plain.append({"role": m.get("message.role"), "content": m.get("message.content")})
    return chat_messages(plain, name)[0]


def _time(value: Any, name: str) -> datetime:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RowError("bad_timestamp", f"{name}: not ISO 8601: {str(value)[:40]!r}") from None
    if dt.tzinfo is None:
        raise RowError("bad_timestamp", f"{name}: no UTC offset in {str(value)[:40]!r}")
    return dt


def rows(path: Path) -> Iterator[Row]:
    for number, obj in json_rows(path):
        if isinstance(obj, RowError) or not isinstance(obj, dict):
            yield error_row(number, "", obj if isinstance(obj, RowError) else RowError("not_an_object", "expected an object"))
            continue
        flat = flatten(obj)
        try:
            if "annotator_kind" in flat:
                record = _feedback(flat)
                yield feedback_row(number, obj, record) if record else Row(number, "", SKIP)
            elif _span_kind(flat) != "LLM":
                yield Row(number, "", SKIP)
            else:
                yield interaction_row(number, obj, _interaction(flat))
        except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
            yield error_row(number, obj, as_row_error(exc), kind="feedback" if "annotator_kind" in flat else "interaction")


def _span_kind(flat: dict[str, Any]) -> str | None:
    kind = flat.get("span_kind") or flat.get("attributes.openinference.span.kind")
    return str(kind).upper() if kind else None


def _interaction(flat: dict[str, Any]) -> dict[str, Any]:
    span_id = flat.get("context.span_id") or flat.get("span_id")
    if not isinstance(span_id, str) or not span_id:
        raise RowError("missing_id", "context.span_id: missing")
    attrs = _attributes(flat)
    start = _time(flat.get("start_time"), "start_time")
    end = _time(flat.get("end_time"), "end_time") if flat.get("end_time") else start
    outputs = _messages(attrs.get("llm.output_messages"), "llm.output_messages")
    output = next((m["content"] for m in outputs if m["role"] == "assistant"), None)
    if output is None:
        raise RowError("bad_messages", "llm.output_messages: no assistant message")
    trace_id = flat.get("context.trace_id") or flat.get("trace_id")
    metadata = {"source": KIND, "trace_id": trace_id, "span_id": span_id,
                "input_tokens": attrs.get("llm.token_count.prompt"),
                "output_tokens": attrs.get("llm.token_count.completion"), "provider": attrs.get("llm.provider")}
    return {
        "interaction_id": source_id(KIND, span_id),
        "ts": end.isoformat(),
        "session_id": attrs.get("session.id") or str(trace_id or span_id),
        "user_id": attrs.get("user.id") or "anonymous",
        "model_version": attrs.get("llm.model_name") or "unknown",
        "messages": _messages(attrs.get("llm.input_messages"), "llm.input_messages"),
        "output": output,
        "latency_ms": max((end - start).total_seconds() * 1000, 0.0),
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def _feedback(flat: dict[str, Any]) -> dict[str, Any] | None:
    if str(flat.get("annotator_kind")).upper() != "HUMAN":
        return None
    span_id = flat.get("span_id") or flat.get("context.span_id")
    if not isinstance(span_id, str) or not span_id:
        raise RowError("missing_id", "span_id: missing")
    label, score, explanation = flat.get("result.label"), flat.get("result.score"), flat.get("result.explanation")
    name = str(flat.get("name") or "").strip().lower()
    text = None
    if name in CORRECTION_NAMES:
        kind, text = "correction", explanation if isinstance(explanation, str) and explanation.strip() else label
        if not isinstance(text, str) or not text.strip():
            raise RowError("missing_field", f"result: the {name!r} annotation has no corrected text")
    else:
        kind = feedback_kind(label) or feedback_kind(score)
        if kind is None:
            return None
    when = flat.get("updated_at") or flat.get("created_at")
    if when is None:
        raise RowError("bad_timestamp", "created_at: missing")
    return {"interaction_id": source_id(KIND, span_id), "kind": kind, "text": text,
            "ts": _time(when, "created_at").isoformat()}
