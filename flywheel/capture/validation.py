"""Validation of landing rows: bytes -> JSON object -> checked fields, or a `RowError` with its reason.

Reasons: invalid_utf8, invalid_json, not_an_object, missing_id, missing_field, wrong_type,
bad_timestamp, bad_messages, bad_kind, out_of_range, huge_field (and duplicate_id, found by ingestion).
A rejected row becomes a quarantine row (`QUARANTINE_SCHEMA`'s fields: source_file, line, reason,
detail, raw).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flywheel.capture.landing import LandingLine
from flywheel.capture.records import FEEDBACK_KINDS, RowError, parse_ts_us

ROLES = frozenset({"system", "user", "assistant", "tool"})

QuarantineRow = tuple[str, int, str, str, str]
"""(source_file, line, reason, detail, raw): one row of `flywheel.core.records.QUARANTINE_SCHEMA`."""

_METADATA_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def decode_object(raw: bytes) -> dict[str, Any]:
    """Bytes of one JSONL line -> a JSON object, or RowError(invalid_utf8 | invalid_json | not_an_object)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowError("invalid_json", f"{exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise RowError("invalid_json", "nested too deeply") from None
    if not isinstance(obj, dict):
        raise RowError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def raw_text(raw: bytes) -> str:
    """The raw line as text for quarantine (invalid UTF-8 bytes kept as `\\xNN` escapes)."""
    return raw.decode("utf-8", errors="backslashreplace")


def quarantine_row(item: LandingLine, reason: str, detail: str) -> QuarantineRow:
    """The quarantine row of a rejected landing line; the detail is prefixed with `<file name>:<line>: `."""
    return (
        item.source_file,
        item.line,
        reason,
        f"{Path(item.source_file).name}:{item.line}: {detail}",
        raw_text(item.raw),
    )


def duplicate_detail(iid: str, files: Sequence[Path], at: int) -> str:
    """The detail of a `duplicate_id` row; `at` is `file_index << 32 | line` of the id's first row."""
    return f"interaction_id {iid!r} already seen at {files[at >> 32].name}:{at & 0xFFFFFFFF}"


# --- fields ----------------------------------------------------------------------------------------
def _text_field(obj: dict[str, Any], name: str, max_chars: int, *, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise RowError("missing_id" if name == "interaction_id" else "missing_field", f"{name}: missing")
        return None
    if not isinstance(value, str):
        raise RowError("wrong_type", f"{name}: expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise RowError("missing_id" if name == "interaction_id" else "missing_field", f"{name}: empty")
    if len(value) > max_chars:
        raise RowError("huge_field", f"{name}: {len(value)} characters > {max_chars}")
    return value


def _number_field(obj: dict[str, Any], name: str, *, required: bool, low: float, high: float) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise RowError("missing_field", f"{name}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError("wrong_type", f"{name}: expected a number, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise RowError("out_of_range", f"{name}: {value!r} not in [{low}, {high}]")
    return float(value)


# --- records ---------------------------------------------------------------------------------------
def validate_interaction(obj: dict[str, Any], max_chars: int) -> tuple[Any, ...]:
    """The checked fields of one interaction record, in `RowBatch.add` order, or RowError."""
    interaction_id = _text_field(obj, "interaction_id", max_chars)
    ts_us = parse_ts_us(obj.get("ts"))
    session_id = _text_field(obj, "session_id", max_chars)
    user_id = _text_field(obj, "user_id", max_chars)
    model_version = _text_field(obj, "model_version", max_chars)
    messages = obj.get("messages")
    if messages is None:
        raise RowError("missing_field", "messages: missing")
    if not isinstance(messages, list) or not messages:
        raise RowError("bad_messages", "messages: expected a non-empty list of {role, content}")
    roles: list[str] = []
    contents: list[str] = []
    last_user = -1
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RowError("bad_messages", f"messages[{i}]: expected an object, got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise RowError(
                "bad_messages", f"messages[{i}].role: {str(role)[:32]!r} is not one of {sorted(ROLES)}"
            )
        if not isinstance(content, str):
            raise RowError(
                "bad_messages", f"messages[{i}].content: expected a string, got {type(content).__name__}"
            )
        if len(content) > max_chars:
            raise RowError("huge_field", f"messages[{i}].content: {len(content)} characters > {max_chars}")
        if role == "user":
            last_user = i
        roles.append(role)
        contents.append(content)
    if last_user < 0:
        raise RowError("bad_messages", "messages: no user message")
    output = obj.get("output")
    if not isinstance(output, str):
        raise RowError(
            "missing_field" if output is None else "wrong_type",
            f"output: expected a string, got {type(output).__name__}",
        )
    if len(output) > max_chars:
        raise RowError("huge_field", f"output: {len(output)} characters > {max_chars}")
    latency_ms = _number_field(obj, "latency_ms", required=True, low=0.0, high=1e9)
    confidence = _number_field(obj, "confidence", required=False, low=0.0, high=1.0)
    metadata = obj.get("metadata")
    if metadata is None:
        metadata_json = "{}"
    elif isinstance(metadata, dict):
        metadata_json = _METADATA_ENCODER.encode(metadata)
        if len(metadata_json) > max_chars:
            raise RowError("huge_field", f"metadata: {len(metadata_json)} characters > {max_chars}")
    else:
        raise RowError("wrong_type", f"metadata: expected an object, got {type(metadata).__name__}")
    return (
        interaction_id, ts_us, session_id, user_id, model_version, roles, contents, last_user,
        output, latency_ms, confidence, metadata_json,
    )  # fmt: skip


def checked_row(item: LandingLine, max_chars: int) -> tuple[Any, ...]:
    """`validate_interaction` of a landing line, refusing at once a line too long for any valid row."""
    if len(item.raw) > 16 * max_chars + 65_536:  # larger than any valid row could be
        raise RowError("huge_field", f"line of {len(item.raw)} bytes exceeds the field limits")
    return validate_interaction(decode_object(item.raw), max_chars)


def validate_feedback(obj: dict[str, Any], max_chars: int) -> tuple[str, int, str, str | None]:
    """(interaction_id, ts in epoch us, kind, text) of one feedback record, or RowError."""
    iid = obj.get("interaction_id")
    if iid is None or (isinstance(iid, str) and not iid.strip()):
        raise RowError("missing_id", "interaction_id: missing or empty")
    if not isinstance(iid, str):
        raise RowError("wrong_type", f"interaction_id: expected a string, got {type(iid).__name__}")
    ts_us = parse_ts_us(obj.get("ts"))
    kind = obj.get("kind")
    if kind not in FEEDBACK_KINDS:
        raise RowError("bad_kind", f"kind: {str(kind)[:32]!r} is not one of {list(FEEDBACK_KINDS)}")
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise RowError("wrong_type", f"text: expected a string, got {type(text).__name__}")
    if text is not None and len(text) > max_chars:
        raise RowError("huge_field", f"text: {len(text)} characters > {max_chars}")
    if kind == "correction" and not (text and text.strip()):
        raise RowError("missing_field", "text: a correction needs the corrected text")
    return iid, ts_us, kind, text


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Parsing millions of rows makes millions of short-lived, acyclic objects; the cyclic garbage
    collector would rescan the live ones over and over (about a third of the parse time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
