"""MLflow traces with their assessments.

Rows (one trace per file, a JSON array, `{"traces": [...]}`, or JSON Lines): traces as MLflow writes
them (`Trace.to_json()`, `mlflow traces get`): `info` (`trace_id`, `trace_metadata` with
`mlflow.trace.session` / `mlflow.trace.user`, `assessments`) and `data.spans`, whose attributes hold
JSON-encoded values (`mlflow.spanType`, `mlflow.spanInputs`, `mlflow.spanOutputs`).

Each `CHAT_MODEL` / `LLM` span is the interaction `mlflow:<trace id>:<span id>`: the `messages` of
its inputs (OpenAI style), the answer of its outputs (an OpenAI response, a message or text), its
start and end. Assessments by people (`source.source_type: HUMAN`, not superseded: `valid` is not
false) become feedback on their span, else on the trace's last model span: an expectation is a
correction (its value is the expected answer); a feedback value true / 1 / "yes" is `thumbs_up`,
false / 0 / "no" `thumbs_down`. LLM-judge and code assessments are evaluations, not user feedback.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.capture.importers.common import (
    SKIP,
    Row,
    as_row_error,
    error_row,
    feedback_kind,
    feedback_row,
    input_messages,
    interaction_row,
    json_rows,
    output_text,
    source_id,
)
from flywheel.capture.otlp import ts_of_ns
from flywheel.capture.records import RowError

KIND = "mlflow"
MODEL_SPAN_TYPES = frozenset({"CHAT_MODEL", "LLM"})


def rows(path: Path) -> Iterator[Row]:
    for number, trace in json_rows(path, list_keys=("traces",)):
        if isinstance(trace, RowError) or not isinstance(trace, dict):
            yield error_row(number, "", trace if isinstance(trace, RowError) else RowError("not_an_object", "expected an object"))
            continue
        info, data = trace.get("info"), trace.get("data")
        spans = data.get("spans") if isinstance(data, dict) else None
        if not isinstance(info, dict) or not isinstance(spans, list) or not info.get("trace_id"):
            yield error_row(number, trace, RowError("unknown_shape", "expected an MLflow trace: info.trace_id and data.spans"))
            continue
        by_span: dict[str, str] = {}
        last = None
        for span in spans:
            try:
                if _attr(span, "mlflow.spanType") not in MODEL_SPAN_TYPES:
                    yield Row(number, "", SKIP)
                    continue
                record = _interaction(info, span)
            except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
                yield error_row(number, span, as_row_error(exc))
                continue
            by_span[record["metadata"]["span_id"]] = last = record["interaction_id"]
            yield interaction_row(number, span, record)
        assessments = info.get("assessments")
        for assessment in assessments if isinstance(assessments, list) else []:
            try:
                record = _feedback(assessment, by_span, last)
                yield feedback_row(number, assessment, record) if record else Row(number, "", SKIP)
            except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
                yield error_row(number, assessment, as_row_error(exc), kind="feedback")


def _attr(span: Any, name: str) -> Any:
    """A span attribute, JSON-decoded (MLflow stores every attribute value as JSON text)."""
    value = (span.get("attributes") or {}).get(name) if isinstance(span, dict) else None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _hex_id(value: Any) -> str:
    """MLflow's span ids are base64 of the OTel bytes; hex like every other source."""
    if not isinstance(value, str) or not value:
        raise RowError("missing_id", "span_id: missing")
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return value


def _interaction(info: dict[str, Any], span: dict[str, Any]) -> dict[str, Any]:
    span_id = _hex_id(span.get("span_id"))
    start, end = span.get("start_time_unix_nano"), span.get("end_time_unix_nano") or span.get("start_time_unix_nano")
    try:
        start_ns, end_ns = int(start), int(end)
    except (TypeError, ValueError):
        raise RowError("bad_timestamp", f"start/end_time_unix_nano: expected integers, got {start!r} / {end!r}") from None
    inputs, outputs = _attr(span, "mlflow.spanInputs"), _attr(span, "mlflow.spanOutputs")
    meta = info.get("trace_metadata") or {}
    trace_id = str(info["trace_id"])
    metadata = {"source": KIND, "trace_id": trace_id, "span_id": span_id, "name": span.get("name"),
                "response_id": outputs.get("id") if isinstance(outputs, dict) else None}
    return {
        "interaction_id": source_id(KIND, trace_id, span_id),
        "ts": ts_of_ns(end_ns),
        "session_id": meta.get("mlflow.trace.session") or trace_id,
        "user_id": meta.get("mlflow.trace.user") or "anonymous",
        "model_version": (inputs.get("model") if isinstance(inputs, dict) else None) or "unknown",
        "messages": input_messages(inputs),
        "output": output_text(outputs),
        "latency_ms": max((end_ns - start_ns) / 1e6, 0.0),
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def _when(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # epoch milliseconds
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    if isinstance(value, str):
        return value.replace("Z", "+00:00")
    raise RowError("bad_timestamp", "create_time: missing")


def _feedback(a: Any, by_span: dict[str, str], last: str | None) -> dict[str, Any] | None:
    if not isinstance(a, dict):
        raise RowError("not_an_object", "assessment: expected an object")
    if (a.get("source") or {}).get("source_type") != "HUMAN" or a.get("valid") is False:
        return None
    text = None
    if "expectation" in a:
        value = (a.get("expectation") or {}).get("value")
        text = value if isinstance(value, str) else output_text(value)
        kind = "correction"
    else:
        kind = feedback_kind((a.get("feedback") or {}).get("value"))
        if kind is None:
            return None
    span = a.get("span_id")
    iid = by_span.get(_hex_id(span)) if span else last
    if iid is None:
        raise RowError("unknown_interaction", f"assessment {a.get('assessment_name')!r}: no model span of its trace in this file")
    return {"interaction_id": iid, "kind": kind, "text": text, "ts": _when(a.get("create_time") or a.get("create_time_ms"))}
