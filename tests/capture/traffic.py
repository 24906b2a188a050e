"""Capture test traffic: one day, a question logged through the SDK, an interaction record, bad lines,
and hostile lines (a fixed corpus, and hypothesis strategies that generate them)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import strategies as st

from flywheel.capture.sdk import CaptureWriter

DAY = "2026-01-05"
NEXT = "2026-01-06"


def log_question(writer: CaptureWriter, text: str, ts: str = f"{DAY}T10:00:00Z", **kw: object) -> str:
    return writer.log_interaction(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        f"answer to {text}",
        session_id=str(kw.pop("session_id", "s1")),
        user_id="u1",
        model_version="m1",
        latency_ms=12.5,
        ts=ts,
        **kw,  # type: ignore[arg-type]
    )


def interaction_record(**overrides: object) -> dict:
    rec = {
        "interaction_id": str(uuid.uuid4()),
        "ts": f"{DAY}T08:00:00Z",
        "session_id": "s",
        "user_id": "u",
        "model_version": "m1",
        "messages": [{"role": "user", "content": "hello"}],
        "output": "hi",
        "latency_ms": 3,
        "confidence": 0.5,
        "metadata": {"app": "web"},
    }
    rec.update(overrides)
    return {k: v for k, v in rec.items() if v is not ...}


def bad_lines() -> list[tuple[bytes, str]]:
    """(line, expected quarantine reason) for each kind of bad input."""
    huge = "x" * 2000
    return [
        (b"{not json", "invalid_json"),
        (b'{"interaction_id": "a", "ts": "2026-01-05T08:00:00Z", "text": "caf\xe9"}', "invalid_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (json.dumps(interaction_record(interaction_id=...)).encode(), "missing_id"),
        (json.dumps(interaction_record(interaction_id="  ")).encode(), "missing_id"),
        (json.dumps(interaction_record(interaction_id=42)).encode(), "wrong_type"),
        (json.dumps(interaction_record(ts="yesterday")).encode(), "bad_timestamp"),
        (json.dumps(interaction_record(ts="2026-01-05T08:00:00")).encode(), "bad_timestamp"),  # no offset
        (json.dumps(interaction_record(ts=1.7e12)).encode(), "bad_timestamp"),  # milliseconds, not seconds
        (json.dumps(interaction_record(ts=True)).encode(), "bad_timestamp"),
        (json.dumps(interaction_record(session_id=...)).encode(), "missing_field"),
        (json.dumps(interaction_record(messages="hello")).encode(), "bad_messages"),
        (
            json.dumps(interaction_record(messages=[{"role": "assistant", "content": "only me"}])).encode(),
            "bad_messages",
        ),
        (
            json.dumps(interaction_record(messages=[{"role": "wizard", "content": "x"}])).encode(),
            "bad_messages",
        ),
        (json.dumps(interaction_record(messages=[{"role": "user", "content": 5}])).encode(), "bad_messages"),
        (json.dumps(interaction_record(output=None)).encode(), "missing_field"),
        (json.dumps(interaction_record(latency_ms="fast")).encode(), "wrong_type"),
        (json.dumps(interaction_record(confidence=1.5)).encode(), "out_of_range"),
        (json.dumps(interaction_record(metadata=[1])).encode(), "wrong_type"),
        (json.dumps(interaction_record(output=huge)).encode(), "huge_field"),
        (json.dumps(interaction_record(messages=[{"role": "user", "content": huge}])).encode(), "huge_field"),
        (b"[" * 5_000, "invalid_json"),  # nested too deeply for the parser
        # rows that used to stop the whole run, or pass and fail downstream
        (_with_raw(interaction_record(), "latency_ms", "9" * 5_000), "invalid_json"),  # int > 4,300 digits
        (
            json.dumps(interaction_record(messages=[{"role": ["user"], "content": "x"}])).encode(),
            "bad_messages",
        ),
        (json.dumps(interaction_record(output="\ud800")).encode(), "unencodable_text"),  # lone surrogate
        (
            json.dumps(interaction_record(output="a\x00b")).encode(),
            "unencodable_text",
        ),  # PostgreSQL refuses NUL
        (json.dumps(interaction_record(metadata={"k\udfff": 1})).encode(), "unencodable_text"),
        (json.dumps(interaction_record(interaction_id="i" * 129)).encode(), "huge_field"),  # > MAX_ID_CHARS
        (json.dumps(interaction_record(session_id="s" * 129)).encode(), "huge_field"),
        (json.dumps(interaction_record(user_id="u" * 129)).encode(), "huge_field"),
        (json.dumps(interaction_record(model_version="m" * 129)).encode(), "huge_field"),
        (_with_raw(interaction_record(), "latency_ms", "NaN"), "invalid_json"),
        (_with_raw(interaction_record(), "latency_ms", "1" + "0" * 400), "out_of_range"),  # no OverflowError
        (_with_raw(interaction_record(), "metadata", '{"x": 1e400}'), "out_of_range"),  # inf in JSON text
        (
            _with_raw(interaction_record(), "metadata", '{"a":' * 900 + "1" + "}" * 900),
            "huge_field",
        ),  # deep, long
        (json.dumps(interaction_record(ts=1e303)).encode(), "bad_timestamp"),  # no OverflowError
        # timestamped on another day than the folder's
        (json.dumps(interaction_record(ts=f"{NEXT}T00:00:00Z")).encode(), "ts_outside_partition_day"),
        (json.dumps(interaction_record(ts="1975-06-01T12:00:00+00:00")).encode(), "ts_outside_partition_day"),
        (json.dumps(interaction_record(ts=0)).encode(), "ts_outside_partition_day"),  # epoch 0
    ]


def _with_raw(record: dict, name: str, raw: str) -> bytes:
    """`record` as a JSON line with field `name` holding the raw JSON text `raw` (as no encoder writes it)."""
    return json.dumps({**record, name: "__RAW__"}).replace('"__RAW__"', raw).encode()


def hostile_feedback_lines(iid: str) -> list[tuple[bytes, str]]:
    """(line, expected quarantine reason) of bad feedback for an interaction `iid` of DAY."""
    ok = {"interaction_id": iid, "ts": f"{DAY}T09:00:00Z", "kind": "thumbs_up"}
    return [
        (_with_raw(ok, "ts", "9" * 5_000), "invalid_json"),
        (json.dumps({**ok, "kind": ["copy"]}).encode(), "bad_kind"),
        (json.dumps({**ok, "kind": "correction", "text": "\ud800"}).encode(), "unencodable_text"),
        (json.dumps({**ok, "kind": "correction", "text": "fix\x00"}).encode(), "unencodable_text"),
        (json.dumps({**ok, "interaction_id": "i" * 129}).encode(), "huge_field"),
        (json.dumps({**ok, "interaction_id": {"a": 1}}).encode(), "wrong_type"),
        (json.dumps({**ok, "ts": "1975-01-01T00:00:00Z"}).encode(), "ts_outside_partition_day"),
        (b"\xff\xfe garbage \x00", "invalid_utf8"),
    ]


# --- hypothesis: hostile rows ----------------------------------------------------------------------
INTERACTION_FIELDS = ("interaction_id", "ts", "session_id", "user_id", "model_version", "messages", "output",
                      "latency_ms", "confidence", "metadata")  # fmt: skip
FEEDBACK_FIELDS = ("interaction_id", "ts", "kind", "text")

_chars = st.characters() | st.sampled_from(
    ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\u2028", "\ufeff"]
)
_texts = st.text(_chars, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value (and NaN, infinities, surrogates, NUL in strings)."""
_raw_values = st.one_of(
    st.integers(4_000, 6_000).map(lambda n: "9" * n),  # more digits than Python parses
    st.integers(300, 3_000).map(lambda n: "[" * n + "]" * n),  # deep nesting
    st.integers(300, 1_000).map(lambda n: '{"a":' * n + "0" + "}" * n),
    st.sampled_from(
        ["NaN", "-Infinity", "1e999", "-0", '"\\ud800"', '"\\u0000"', '"\\udc00\\ud800"', "1e-999"]
    ),
)


@st.composite
def hostile_line(draw: st.DrawFn, good: dict[str, Any], fields: tuple[str, ...]) -> bytes:
    """A line derived from the good record `good`: fields replaced by any JSON value, removed, or
    replaced by raw JSON text no encoder writes; or binary garbage; or a JSON value that is no object."""
    kind = draw(st.sampled_from(["fields", "fields", "fields", "raw", "binary", "not_object"]))
    if kind == "binary":
        return draw(st.binary(max_size=120))
    if kind == "not_object":
        return json.dumps(draw(json_values)).encode("utf-8", "surrogatepass")
    record = dict(good)
    for name in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique=True)):
        if draw(st.booleans()):
            record[name] = draw(json_values)
        else:
            record.pop(name, None)
    if kind == "raw":
        name = draw(st.sampled_from(fields))
        return _with_raw(record, name, draw(_raw_values))
    text = json.dumps(record, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")  # an unescaped surrogate is not UTF-8: invalid_utf8


def non_blank_count(data: bytes) -> int:
    """The rows a landing file of `data` holds (its non-blank lines, as ingestion counts them)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stripped = (line.rstrip(b"\r\n") for line in lines)
    return sum(1 for raw in stripped if raw and not raw.isspace())
