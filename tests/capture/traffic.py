"""Capture test traffic: one day, a question logged through the SDK, an interaction record, bad lines."""

from __future__ import annotations

import json
import uuid

from flywheel.capture.sdk import CaptureWriter

DAY = "2026-01-05"


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
    ]
