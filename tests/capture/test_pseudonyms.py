"""Pseudonymous ids: user and session ids replaced at capture, consistent across days (sessions and
resubmissions still work), in quarantined lines too; a clear error without a key; key rotation."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import landing_files
from flywheel.capture.pseudonyms import (
    KEY_ENV,
    OLD_KEYS_ENV,
    Pseudonymizer,
    PseudonymKeyError,
    all_pseudonymizers,
    key_id,
    pseudonymizer,
)
from flywheel.capture.records import INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.capture.signals import SIGNALS, compute_signals
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome
from tests.capture.traffic import DAY, NEXT, interaction_record

KEY = "another-test-key-0123456789"


def _ask(w: CaptureWriter, text: str, ts: str, user: str, session: str) -> str:
    return w.log_interaction([{"role": "user", "content": text}], "an answer", session_id=session, user_id=user,
                             model_version="m1", latency_ms=5, ts=ts)


def test_a_pseudonym_is_keyed_stable_and_names_its_key() -> None:
    p = Pseudonymizer(KEY)
    a = p.pseudonym("user_id", "alice@example.com")
    assert a == Pseudonymizer(KEY).pseudonym("user_id", "alice@example.com")  # the same every day, every process
    assert a.startswith(f"ps:{key_id(KEY)}:") and len(a) == len("ps:") + 8 + 1 + 32
    assert "alice" not in a
    assert a != p.pseudonym("session_id", "alice@example.com")  # one raw value, two fields: two pseudonyms
    assert a != p.pseudonym("user_id", "alice@example.org")
    other = Pseudonymizer(KEY + "-rotated")
    assert other.pseudonym("user_id", "alice@example.com") != a and other.key_id != p.key_id


def test_ingestion_stores_pseudonyms_never_the_raw_ids(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        _ask(w, "how do I export my notes", f"{DAY}T09:00:00Z", "alice-raw-id", "alice-session-1")
        _ask(w, "and to PDF?", f"{DAY}T09:01:00Z", "alice-raw-id", "alice-session-1")
        _ask(w, "reset my password", f"{DAY}T10:00:00Z", "bob-raw-id", "bob-session-9")
    ingest_interactions(home, DAY, CaptureConfig())
    table = pq.read_table(home.warehouse(INTERACTIONS, DAY))
    p = pseudonymizer(CaptureConfig())
    assert p is not None
    assert table["user_id"].to_pylist() == [p.pseudonym("user_id", "alice-raw-id")] * 2 + [
        p.pseudonym("user_id", "bob-raw-id")]
    assert table["session_id"].to_pylist()[0] == p.pseudonym("session_id", "alice-session-1")
    data = home.warehouse(INTERACTIONS, DAY).read_bytes()
    assert b"raw-id" not in data and b"-session-" not in data


def test_opting_out_stores_the_raw_ids_and_needs_no_key(home: FlywheelHome, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with CaptureWriter(home) as w:
        _ask(w, "hello", f"{DAY}T09:00:00Z", "carol", "c-1")
    ingest_interactions(home, DAY, CaptureConfig(pseudonymize=False))
    table = pq.read_table(home.warehouse(INTERACTIONS, DAY))
    assert table["user_id"].to_pylist() == ["carol"] and table["session_id"].to_pylist() == ["c-1"]


def test_no_key_is_a_clear_error_before_anything_is_written(
    home: FlywheelHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with CaptureWriter(home) as w:
        _ask(w, "hello", f"{DAY}T09:00:00Z", "dave", "d-1")
    with pytest.raises(PseudonymKeyError, match=f"capture.pseudonymize is on but \\${KEY_ENV} is not set"):
        ingest_interactions(home, DAY, CaptureConfig())
    assert not home.warehouse(INTERACTIONS, DAY).exists()
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(PseudonymKeyError, match="at least 16 characters"):
        pseudonymizer(CaptureConfig())


def test_pseudonyms_keep_sessions_and_resubmissions_working_across_days(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        same_day = _ask(w, "change my shipping address", f"{DAY}T12:00:00Z", "erin", "erin-s1")
        _ask(w, "change my shipping address!", f"{DAY}T12:00:30Z", "erin", "erin-s1")  # resubmitted
        _ask(w, "change my shipping address", f"{DAY}T12:00:40Z", "frank", "frank-s1")  # another session
        midnight = _ask(w, "summarise this article", f"{DAY}T23:59:30Z", "erin", "erin-s2")
        _ask(w, "summarise this article please", f"{NEXT}T00:00:20Z", "erin", "erin-s2")  # across midnight
    config = CaptureConfig()
    ingest_interactions(home, DAY, config)
    report = compute_signals(home, DAY, config)
    assert report.resubmissions == 2 and report.resubmissions_across_midnight == 1
    signals = {r["interaction_id"]: r for r in pq.read_table(home.warehouse(SIGNALS, DAY)).to_pylist()}
    assert signals[same_day]["signal"] == "negative" and signals[midnight]["signal"] == "negative"
    assert signals[same_day]["session_id"] == pseudonymizer(config).pseudonym("session_id", "erin-s1")
    # the next day's capture gives erin's session the same pseudonym (the same key, any day)
    ingest_interactions(home, NEXT, config)
    sessions = pq.read_table(home.warehouse(INTERACTIONS, NEXT))["session_id"].to_pylist()
    assert sessions == [signals[midnight]["session_id"]]


def test_quarantined_lines_keep_pseudonyms_not_raw_ids(home: FlywheelHome) -> None:
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    bad = [interaction_record(user_id="gina-raw", session_id="gina-sess", output=None),  # missing output
           interaction_record(user_id="gina-raw", session_id="gina-sess", ts="yesterday")]
    lines = [json.dumps(r) for r in bad] + ['{"user_id": "gina-raw", "session_id": 12345, broken json']
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    report = ingest_interactions(home, DAY, CaptureConfig())
    assert report.rows_quarantined == 3
    raws = pq.read_table(home.quarantine(INTERACTIONS, DAY))["raw"].to_pylist()
    p = pseudonymizer(CaptureConfig())
    assert all("gina" not in r and p.pseudonym("user_id", "gina-raw") in r for r in raws)
    assert p.pseudonym("session_id", "12345") in raws[2]  # a number id, in a line that is not JSON
    assert landing_files(home, INTERACTIONS, DAY)  # the landing file itself is left as it was


def test_erasure_hashes_with_the_current_and_every_old_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OLD_KEYS_ENV, f"{KEY}, second-old-key-abcdefgh")
    keys = [p.key_id for p in all_pseudonymizers(CaptureConfig())]
    assert len(set(keys)) == 3 and keys[1:] == [key_id(KEY), key_id("second-old-key-abcdefgh")]
    monkeypatch.setenv(OLD_KEYS_ENV, "too-short")
    with pytest.raises(PseudonymKeyError, match=f"{OLD_KEYS_ENV}, key 1"):
        all_pseudonymizers(CaptureConfig())


_ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(user=_ids, session=_ids, other=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4),
       ascii_only=st.booleans())
def test_scrubbing_a_line_replaces_exactly_the_id_fields(user: str, session: str, other: dict[str, str],
                                                         ascii_only: bool) -> None:
    p = Pseudonymizer(KEY)
    record = {k: v for k, v in other.items() if k not in ("user_id", "session_id")}
    record.update(user_id=user, session_id=session)
    scrubbed = json.loads(p.scrub_line(json.dumps(record, ensure_ascii=ascii_only)))
    assert scrubbed["user_id"] == p.pseudonym("user_id", user)
    assert scrubbed["session_id"] == p.pseudonym("session_id", session)
    assert {k: v for k, v in scrubbed.items() if k not in ("user_id", "session_id")} == {
        k: v for k, v in record.items() if k not in ("user_id", "session_id")}
