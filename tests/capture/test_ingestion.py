"""Ingestion in one process: validation, quarantine with reasons, PII, duplicates, re-runs, batches."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.capture import validation
from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.records import INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.capture.tables import INTERACTIONS_SCHEMA, IngestReport
from flywheel.config import CaptureConfig
from flywheel.core.records import QUARANTINE_SCHEMA
from flywheel.core.storage import FlywheelHome, read_parquet
from tests.capture.traffic import (
    DAY,
    INTERACTION_FIELDS,
    bad_lines,
    hostile_line,
    interaction_record,
    log_question,
    non_blank_count,
)


def test_bad_rows_are_quarantined_with_reasons_and_counts_are_conserved(home: FlywheelHome) -> None:
    cases = bad_lines()
    good = [
        interaction_record(),
        interaction_record(ts=1767600000),
        interaction_record(confidence=None, metadata=...),
    ]
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    lines = (
        [json.dumps(g).encode() for g in good[:2]]
        + [b"", b"   "]
        + [line for line, _ in cases]
        + [json.dumps(good[2]).encode()]
    )
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / ".in-progress.jsonl.tmp").write_bytes(b"{half a rec")  # never read

    report = ingest_interactions(home, DAY, CaptureConfig(max_field_chars=1000))
    assert report.rows_read == len(cases) + 3 and report.blank_lines == 2
    assert report.rows_accepted == 3 and report.rows_quarantined == len(cases) and report.conserved

    q = read_parquet(home.quarantine(INTERACTIONS, DAY))
    assert q.schema == QUARANTINE_SCHEMA
    got = {(row["line"], row["reason"]) for row in q.to_pylist()}
    assert got == {(i + 5, reason) for i, (_, reason) in enumerate(cases)}
    utf8 = next(r for r in q.to_pylist() if r["reason"] == "invalid_utf8")
    assert "\\xe9" in utf8["raw"] and utf8["source_file"].endswith("a.jsonl")
    assert all(r["detail"].startswith(f"a.jsonl:{r['line']}: ") for r in q.to_pylist())

    out = pq.read_table(home.warehouse(INTERACTIONS, DAY))
    assert out.schema == INTERACTIONS_SCHEMA
    rows = out.to_pylist()
    assert [r["metadata"] for r in rows] == ['{"app":"web"}', '{"app":"web"}', "{}"]
    assert rows[1]["ts"].timestamp() == 1767600000 and rows[2]["confidence"] is None


def test_duplicates_pii_and_rerun_replacing_output(home: FlywheelHome) -> None:
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    dup = interaction_record(
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "mail me at bob@corp.com"},
                  {"role": "assistant", "content": "ok"}, {"role": "user", "content": "my card is 4111 1111 1111 1111"}],
        output="Your IP is 10.1.2.3", metadata={"contact": "+1 415-555-0134"},
    )  # fmt: skip
    (folder / "a.jsonl").write_text(json.dumps(dup) + "\n" + json.dumps(interaction_record()) + "\n")
    (folder / "b.jsonl").write_text(json.dumps(dup) + "\n")

    report = ingest_interactions(home, DAY, CaptureConfig())
    assert (report.rows_read, report.rows_accepted, dict(report.quarantine_reasons)) == (
        3,
        2,
        {"duplicate_id": 1},
    )
    assert report.pii_hits == {"email": 1, "card": 1, "ip": 1, "phone": 1}
    q = read_parquet(home.quarantine(INTERACTIONS, DAY)).to_pylist()
    assert q[0]["source_file"].endswith("b.jsonl") and "already seen at a.jsonl:1" in q[0]["detail"]
    first = read_parquet(home.warehouse(INTERACTIONS, DAY)).to_pylist()[0]
    assert [m["content"] for m in first["messages"]] == [
        "sys",
        "mail me at [EMAIL]",
        "ok",
        "my card is [CARD]",
    ]
    assert first["input_text"] == "my card is [CARD]" and first["output"] == "Your IP is [IP]"
    assert first["metadata"] == '{"contact":"[PHONE]"}'

    (folder / "c.jsonl").write_text(json.dumps(interaction_record()) + "\n")
    again = ingest_interactions(home, DAY, CaptureConfig(pii={"enabled": False}))
    assert again.rows_accepted == 3 and not again.pii_hits
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).num_rows == 3
    assert sorted(p.name for p in home.warehouse(INTERACTIONS).iterdir()) == [f"{DAY}.parquet"]


def test_small_batches_give_the_same_table(home: FlywheelHome) -> None:
    with CaptureWriter(home) as writer:
        for i in range(50):
            log_question(writer, f"question {i} from a{i}@x.org", session_id=f"s{i % 7}", confidence=i / 50)
    ingest_interactions(home, DAY, CaptureConfig())
    whole = read_parquet(home.warehouse(INTERACTIONS, DAY))
    ingest_interactions(home, DAY, CaptureConfig(), batch_rows=7)
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).equals(whole)
    assert whole.num_rows == 50 and whole.column("input_text")[3].as_py() == "question 3 from [EMAIL]"


def test_empty_day_writes_empty_tables(home: FlywheelHome) -> None:
    report = ingest_interactions(home, DAY, CaptureConfig())
    assert (report.files, report.rows_read, report.quarantine_rate) == (0, 0, 0.0)
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).num_rows == 0


# --- no row can stop a run -------------------------------------------------------------------------
def _ingest_lines(
    home: FlywheelHome, lines: list[bytes], config: CaptureConfig | None = None
) -> IngestReport:
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return ingest_interactions(home, DAY, config or CaptureConfig(max_field_chars=1000))


def test_an_unforeseen_exception_quarantines_its_row_only(home: FlywheelHome, monkeypatch) -> None:
    """Validation raising something no one foresaw: `unexpected:<Type>`, the message as detail."""
    real = validation.parse_ts_us

    def fragile(value: object, field_name: str = "ts") -> int:
        if value == f"{DAY}T09:09:09Z":
            raise ZeroDivisionError("a bug in a validator")
        return real(value, field_name)

    monkeypatch.setattr(validation, "parse_ts_us", fragile)
    lines = [json.dumps(interaction_record(ts=f"{DAY}T09:09:0{i}Z")).encode() for i in range(10)]
    report = _ingest_lines(home, lines)
    assert (report.rows_read, report.rows_accepted, dict(report.quarantine_reasons)) == (
        10, 9, {"unexpected:ZeroDivisionError": 1},
    )  # fmt: skip
    row = read_parquet(home.quarantine(INTERACTIONS, DAY)).to_pylist()[0]
    assert row["line"] == 10 and row["detail"] == "a.jsonl:10: a bug in a validator"


def test_a_row_failing_in_redaction_is_quarantined_and_the_batch_written(
    home: FlywheelHome, redactor_crashes_on_boom: None
) -> None:
    """Conversion is retried row by row after a failure: the other rows of the batch are kept, and
    the PII they hold is counted once."""
    lines = [json.dumps(interaction_record(output=f"answer {i} to a{i}@x.org")).encode() for i in range(6)]
    lines[2] = json.dumps(interaction_record(output="BOOM")).encode()
    report = _ingest_lines(home, lines, CaptureConfig())
    assert (report.rows_accepted, dict(report.quarantine_reasons)) == (5, {"unexpected:RuntimeError": 1})
    assert report.pii_hits == {"email": 5} and report.conserved
    out = read_parquet(home.warehouse(INTERACTIONS, DAY))
    assert out.column("output").to_pylist() == [f"answer {i} to [EMAIL]" for i in (0, 1, 3, 4, 5)]
    assert read_parquet(home.quarantine(INTERACTIONS, DAY)).column("line").to_pylist() == [3]


_GOOD = interaction_record(interaction_id="hostile", ts=f"{DAY}T12:00:00Z")


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(
    hostile=st.lists(hostile_line(_GOOD, INTERACTION_FIELDS), min_size=1, max_size=12),
    seed=st.integers(0, 99),
)
def test_hostile_rows_never_stop_ingestion(hostile: list[bytes], seed: int) -> None:
    """Generated hostile lines among good rows: the run succeeds, every good row is accepted, and
    read = accepted + quarantined, on disk too."""
    with tempfile.TemporaryDirectory() as tmp:
        home = FlywheelHome(Path(tmp))
        good = [interaction_record(interaction_id=f"good-{i}", output=f"answer {i}") for i in range(8)]
        lines = [json.dumps(g).encode() for g in good] + hostile
        random.Random(seed).shuffle(lines)
        report = _ingest_lines(home, lines)
        data = (home.landing(INTERACTIONS, DAY) / "a.jsonl").read_bytes()
        assert report.rows_read == non_blank_count(data) and report.conserved
        out = read_parquet(home.warehouse(INTERACTIONS, DAY))
        assert out.num_rows == report.rows_accepted
        assert read_parquet(home.quarantine(INTERACTIONS, DAY)).num_rows == report.rows_quarantined
        assert {g["interaction_id"] for g in good} <= set(out.column("interaction_id").to_pylist())
