"""Validation of landing rows: bytes -> JSON object -> checked fields, or a `RowError` with its reason.

Reasons: invalid_utf8, invalid_json (also NaN/Infinity, numbers over Python's 4,300 digits, nesting
too deep), not_an_object, unencodable_text (a lone surrogate, which UTF-8 cannot encode, or a NUL
character, which PostgreSQL text refuses, anywhere in the row), missing_id, missing_field,
wrong_type, bad_timestamp, ts_outside_partition_day, bad_messages, bad_kind, out_of_range,
huge_field (a text over `capture.max_field_chars`, an id over `MAX_ID_CHARS`); duplicate_id is found
by ingestion, unknown_interaction by signals. Any other exception a row provokes is
`unexpected:<ExceptionType>` with the message as detail (`rejection`): no row can stop a run.
A rejected row becomes a quarantine row (`QUARANTINE_SCHEMA`'s fields: source_file, line, reason,
detail, raw).

A row's `ts` must fall on the day of the landing folder it was read from (the SDK files each record
under its own UTC day): a row timestamped on another day (a clock gone wrong, epoch 0, a file moved
by hand) is quarantined as `ts_outside_partition_day` rather than filed, uncounted, under the wrong
day; each day's tables stay a function of that day's folder alone.

`user_id` and `session_id` are replaced by their pseudonyms here, as a row is validated, when the
rules carry a `Pseudonymizer` (`row_rules`: `capture.pseudonymize`); a quarantined interaction line
has its ids pseudonymised too (`quarantine_row`).
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.capture.landing import LandingLine
from flywheel.capture.pseudonyms import Pseudonymizer, pseudonymizer
from flywheel.capture.records import FEEDBACK_KINDS, RowError, day_of_us, day_start_us, next_day, parse_ts_us
from flywheel.config import CaptureConfig
from flywheel.core.records import MAX_ID_CHARS

ROLES = frozenset({"system", "user", "assistant", "tool"})
ID_FIELDS = ("interaction_id", "session_id", "user_id", "model_version")

QuarantineRow = tuple[str, int, str, str, str]
"""(source_file, line, reason, detail, raw): one row of `flywheel.core.records.QUARANTINE_SCHEMA`."""

_METADATA_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NUL_OR_SURROGATE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")  # a regex: found by memchr, fast


@dataclass(frozen=True, slots=True)
class RowRules:
    """What a landing row of `day`'s folder must satisfy: texts of at most `max_chars`, `ts` on `day`;
    `pseudonyms` (when given) replaces its user and session ids."""

    day: str
    max_chars: int
    pseudonyms: Pseudonymizer | None = None
    start_us: int = field(init=False)
    end_us: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_us", day_start_us(self.day))
        object.__setattr__(self, "end_us", day_start_us(next_day(self.day)))


def row_rules(day: str, config: CaptureConfig) -> RowRules:
    """The rules of `day`'s landing rows under the project's capture config (the pseudonym key is read
    now: `PseudonymKeyError` when pseudonymisation is on and no key is set)."""
    return RowRules(day, config.max_field_chars, pseudonymizer(config))


def _not_json_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# one decoder for every line (json.loads with an argument would build one per call)
_DECODER = json.JSONDecoder(parse_constant=_not_json_constant)


def decode_object(raw: bytes) -> dict[str, Any]:
    """Bytes of one JSONL line -> a JSON object whose every string can be stored, or
    RowError(invalid_utf8 | invalid_json | not_an_object | unencodable_text)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise RowError("invalid_json", f"{exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise RowError("invalid_json", "nested too deeply") from None
    except ValueError as exc:  # NaN / Infinity, an integer of more than 4,300 digits
        raise RowError("invalid_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise RowError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    if _NUL_OR_SURROGATE_ESCAPE.search(raw) is not None:  # the only way JSON can carry either
        _check_storable(obj)
    return obj


def _check_storable(obj: dict[str, Any]) -> None:
    """RowError(unencodable_text) naming the first string (key or value) holding a lone surrogate or NUL."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            texts = [(path, value)]
        elif isinstance(value, dict):
            texts = []
            for key, item in value.items():
                where = f"{path}.{_shown(key)}" if path else _shown(key)
                texts.append((f"{where} (key)", key))
                stack.append((where, item))
        elif isinstance(value, list):
            texts = []
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
        else:
            continue
        for where, text in texts:
            found = _UNSTORABLE.search(text)
            if found is not None:
                char = found.group()
                what = (
                    "a NUL character (PostgreSQL text cannot hold it)"
                    if char == "\x00"
                    else f"a lone surrogate U+{ord(char):04X} (not encodable as UTF-8)"
                )
                raise RowError("unencodable_text", f"{where}: {what} at character {found.start()}")


def _shown(value: object, limit: int = 40) -> str:
    """A short printable form of a value for a detail message."""
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def raw_text(raw: bytes) -> str:
    """The raw line as text for quarantine (invalid UTF-8 bytes kept as `\\xNN` escapes)."""
    return raw.decode("utf-8", errors="backslashreplace")


def _storable(text: str) -> str:
    """`text` with lone surrogates (an undecodable file name, an exception message) as `\\udcNN` escapes."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def rejection(exc: Exception) -> tuple[str, str]:
    """(reason, detail) of the exception a row provoked: a RowError's own, else `unexpected:<Type>`."""
    if isinstance(exc, RowError):
        return exc.reason, exc.detail
    return f"unexpected:{type(exc).__name__}", str(exc)[:1000] or repr(exc)


def quarantine_row(
    item: LandingLine, reason: str, detail: str, pseudonyms: Pseudonymizer | None = None
) -> QuarantineRow:
    """The quarantine row of a rejected landing line; the detail is prefixed with `<file name>:<line>: `.
    With `pseudonyms`, the line's user and session ids are kept as pseudonyms."""
    raw = raw_text(item.raw)
    return (
        _storable(item.source_file),
        item.line,
        reason,
        _storable(f"{Path(item.source_file).name}:{item.line}: {detail}"),
        raw if pseudonyms is None else pseudonyms.scrub_line(raw),
    )


def rejected_row(item: LandingLine, exc: Exception, pseudonyms: Pseudonymizer | None = None) -> QuarantineRow:
    """The quarantine row of a landing line that raised `exc` anywhere on its way in."""
    return quarantine_row(item, *rejection(exc), pseudonyms)


def duplicate_detail(iid: str, files: Sequence[Path], at: int) -> str:
    """The detail of a `duplicate_id` row; `at` is `file_index << 32 | line` of the id's first row."""
    return f"interaction_id {iid!r} already seen at {files[at >> 32].name}:{at & 0xFFFFFFFF}"


# --- fields ----------------------------------------------------------------------------------------
def _id_field(obj: dict[str, Any], name: str) -> str:
    """A required, non-blank string of at most `MAX_ID_CHARS` (the labeling store's id columns)."""
    value = obj.get(name)
    missing = "missing_id" if name == "interaction_id" else "missing_field"
    if value is None:
        raise RowError(missing, f"{name}: missing")
    if not isinstance(value, str):
        raise RowError("wrong_type", f"{name}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(missing, f"{name}: empty")
    if len(value) > MAX_ID_CHARS:
        raise RowError("huge_field", f"{name}: {len(value)} characters > {MAX_ID_CHARS} (ids' limit)")
    return value


def _number_field(obj: dict[str, Any], name: str, *, required: bool, low: float, high: float) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise RowError("missing_field", f"{name}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError("wrong_type", f"{name}: expected a number, got {type(value).__name__}")
    # an int is compared as it is: math.isfinite(10**400) would raise OverflowError
    if not (low <= value <= high and (isinstance(value, int) or math.isfinite(value))):
        raise RowError("out_of_range", f"{name}: {_shown(value)} not in [{low}, {high}]")
    return float(value)


def _ts_field(obj: dict[str, Any], rules: RowRules) -> int:
    """`ts` in epoch microseconds, on the landing folder's day."""
    ts_us = parse_ts_us(obj.get("ts"))
    if not rules.start_us <= ts_us < rules.end_us:
        raise RowError(
            "ts_outside_partition_day",
            f"ts: {_shown(obj.get('ts'))} is on {day_of_us(ts_us)}, not on {rules.day} (the folder's day)",
        )
    return ts_us


# --- records ---------------------------------------------------------------------------------------
def validate_interaction(obj: dict[str, Any], rules: RowRules) -> tuple[Any, ...]:
    """The checked fields of one interaction record, in `RowBatch.add` order, or RowError."""
    max_chars = rules.max_chars
    interaction_id = _id_field(obj, "interaction_id")
    ts_us = _ts_field(obj, rules)
    session_id = _id_field(obj, "session_id")
    user_id = _id_field(obj, "user_id")
    if rules.pseudonyms is not None:
        session_id = rules.pseudonyms.pseudonym("session_id", session_id)
        user_id = rules.pseudonyms.pseudonym("user_id", user_id)
    model_version = _id_field(obj, "model_version")
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
        if not isinstance(role, str) or role not in ROLES:
            raise RowError(
                "bad_messages", f"messages[{i}].role: {_shown(role)} is not one of {sorted(ROLES)}"
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
        try:
            metadata_json = _METADATA_ENCODER.encode(metadata)
        except RecursionError:
            raise RowError("huge_field", "metadata: nested too deeply") from None
        except ValueError as exc:  # 1e400 parses as inf, which JSON cannot carry
            raise RowError("out_of_range", f"metadata: {exc}") from None
        if len(metadata_json) > max_chars:
            raise RowError("huge_field", f"metadata: {len(metadata_json)} characters > {max_chars}")
    else:
        raise RowError("wrong_type", f"metadata: expected an object, got {type(metadata).__name__}")
    return (
        interaction_id, ts_us, session_id, user_id, model_version, roles, contents, last_user,
        output, latency_ms, confidence, metadata_json,
    )  # fmt: skip


def checked_row(item: LandingLine, rules: RowRules) -> tuple[Any, ...]:
    """`validate_interaction` of a landing line, refusing at once a line too long for any valid row."""
    if len(item.raw) > 16 * rules.max_chars + 65_536:  # larger than any valid row could be
        raise RowError("huge_field", f"line of {len(item.raw)} bytes exceeds the field limits")
    return validate_interaction(decode_object(item.raw), rules)


def validate_feedback(obj: dict[str, Any], rules: RowRules) -> tuple[str, int, str, str | None]:
    """(interaction_id, ts in epoch us, kind, text) of one feedback record, or RowError."""
    iid = _id_field(obj, "interaction_id")
    ts_us = _ts_field(obj, rules)
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in FEEDBACK_KINDS:
        raise RowError("bad_kind", f"kind: {_shown(kind)} is not one of {list(FEEDBACK_KINDS)}")
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise RowError("wrong_type", f"text: expected a string, got {type(text).__name__}")
    if text is not None and len(text) > rules.max_chars:
        raise RowError("huge_field", f"text: {len(text)} characters > {rules.max_chars}")
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
