"""Langfuse trace exports, with their scores and corrected outputs.

Rows (a JSON array, `{"data": [...]}`, or JSON Lines) as Langfuse's public API serialises them
(camelCase; the `langfuse` SDK's `langfuse.api` models write the same): traces with their
`observations` and `scores` nested (`GET /api/public/traces/{id}`), or observations
(`/api/public/v2/observations`) and scores (`/api/public/v3/scores`) as rows of their own.

Each `GENERATION` observation is an interaction `langfuse:<observation id>`: its `input` (a list of
chat messages, `{"messages": [...]}` or a prompt string), its `output` (a string, a message, or an
OpenAI response), `model`, start/end times; session and user from the observation or its trace.
Scores become feedback on the observation they name, else on the last generation of their trace:
a `CORRECTION` score (Langfuse's corrected output) is a `correction` with its text; a boolean or
numeric score of 1 / 0 (and a categorical one whose value says good / bad) is `thumbs_up` /
`thumbs_down`; scores from evaluators (`source: EVAL`), text scores and in-between values are skipped.
"""

from __future__ import annotations

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
    input_messages,
    interaction_row,
    json_rows,
    output_text,
    source_id,
)
from flywheel.capture.records import RowError

KIND = "langfuse"


def rows(path: Path) -> Iterator[Row]:
    generations: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # (row, observation, its trace)
    scores: list[tuple[int, dict[str, Any]]] = []
    skipped: list[Row] = []
    for number, obj in json_rows(path):
        if isinstance(obj, RowError) or not isinstance(obj, dict):
            yield error_row(number, "", obj if isinstance(obj, RowError) else RowError("not_an_object", "expected an object"))
        elif isinstance(obj.get("observations"), list) or isinstance(obj.get("scores"), list):  # a trace
            trace = {k: v for k, v in obj.items() if k not in ("observations", "scores")}
            for o in _list(obj.get("observations")):
                (generations.append((number, o, trace)) if _is_generation(o) else skipped.append(Row(number, "", SKIP)))
            scores += [(number, s) for s in _list(obj.get("scores"))]
        elif "dataType" in obj:
            scores.append((number, obj))
        elif "type" in obj and "traceId" in obj:
            (generations.append((number, obj, {})) if _is_generation(obj) else skipped.append(Row(number, "", SKIP)))
        else:
            yield error_row(number, obj, RowError("unknown_shape", "expected a trace, an observation or a score"))
    yield from skipped
    last_of_trace: dict[str, str] = {}
    for number, obs, trace in sorted(generations, key=lambda g: str(g[1].get("startTime"))):
        try:
            record = _interaction(obs, trace)
            last_of_trace[str(obs.get("traceId") or trace.get("id"))] = record["interaction_id"]
            yield interaction_row(number, obs, record)
        except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
            yield error_row(number, obs, as_row_error(exc))
    for number, score in scores:
        try:
            record = _feedback(score, last_of_trace)
            yield feedback_row(number, score, record) if record else Row(number, "", SKIP)
        except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
            yield error_row(number, score, as_row_error(exc), kind="feedback")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_generation(obs: Any) -> bool:
    return isinstance(obs, dict) and obs.get("type") == "GENERATION"


def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise RowError("bad_timestamp", f"{name}: missing")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError("bad_timestamp", f"{name}: not ISO 8601: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise RowError("bad_timestamp", f"{name}: no UTC offset in {value[:40]!r}")
    return dt


def _interaction(obs: dict[str, Any], trace: dict[str, Any]) -> dict[str, Any]:
    oid = obs.get("id")
    if not isinstance(oid, str) or not oid:
        raise RowError("missing_id", "id: missing")
    start = _time(obs.get("startTime"), "startTime")
    end = _time(obs.get("endTime"), "endTime") if obs.get("endTime") else start
    trace_id = obs.get("traceId") or trace.get("id")
    usage = obs.get("usageDetails") or obs.get("usage") or {}
    metadata = {"source": KIND, "trace_id": trace_id, "observation_id": oid, "name": obs.get("name"),
                "input_tokens": usage.get("input"), "output_tokens": usage.get("output")}
    return {
        "interaction_id": source_id(KIND, oid),
        "ts": end.isoformat(),
        "session_id": obs.get("sessionId") or trace.get("sessionId") or str(trace_id or oid),
        "user_id": obs.get("userId") or trace.get("userId") or "anonymous",
        "model_version": obs.get("model") or "unknown",
        "messages": input_messages(obs.get("input")),
        "output": output_text(obs.get("output")),
        "latency_ms": max((end - start).total_seconds() * 1000, 0.0),
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def _feedback(score: dict[str, Any], last_of_trace: dict[str, str]) -> dict[str, Any] | None:
    data_type, value = score.get("dataType"), score.get("value")
    if data_type == "CORRECTION":
        text = score.get("stringValue") if isinstance(score.get("stringValue"), str) else value
        kind = "correction"
        if not isinstance(text, str) or not text.strip():
            raise RowError("missing_field", "stringValue: a correction score needs the corrected output")
    elif score.get("source") == "EVAL" or data_type == "TEXT":
        return None
    else:
        kind = feedback_kind(score.get("stringValue") if data_type == "CATEGORICAL" else value)
        text = None
        if kind is None:
            return None
    if score.get("observationId"):
        iid = source_id(KIND, score["observationId"])
    elif score.get("traceId") in last_of_trace:
        iid = last_of_trace[score["traceId"]]
    else:
        raise RowError("unknown_interaction", f"score {score.get('id')!r}: its trace {score.get('traceId')!r} "
                                              "has no generation in this file")
    return {"interaction_id": iid, "kind": kind, "text": text, "ts": _time(score.get("timestamp"), "timestamp").isoformat()}
