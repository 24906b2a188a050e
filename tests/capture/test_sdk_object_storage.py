"""The capture SDK writing straight to a landing zone on object storage (a real S3 server on 127.0.0.1):
one object per writer per flush, nothing visible before it, and the capture step reads what it wrote."""

from __future__ import annotations

from datetime import UTC, datetime

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import landing_days, landing_files
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome, read_parquet

TS = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def log(writer: CaptureWriter, question: str, user: str = "user-0", interaction_id: str | None = None) -> str:
    return writer.log_interaction([{"role": "user", "content": question}], f"answer to {question}",
                                  session_id="s1", user_id=user, model_version="v1", latency_ms=12.0, ts=TS,
                                  interaction_id=interaction_id)


def test_a_writer_publishes_one_object_per_flush_and_capture_reads_them(s3_home: FlywheelHome) -> None:
    writer = CaptureWriter(str(s3_home.root), max_age_s=3600)  # a serving replica knows only the URL
    assert writer.remote
    ids = [log(writer, f"question {i}", user=f"user-{i}") for i in range(3)]
    writer.log_feedback(ids[0], "copy", ts=TS)
    assert landing_files(s3_home, INTERACTIONS, "2026-03-02") == []  # buffered: no half object is visible
    writer.flush()
    first = landing_files(s3_home, INTERACTIONS, "2026-03-02")
    assert len(first) == 1 and len(landing_files(s3_home, FEEDBACK, "2026-03-02")) == 1
    assert first[0].read_text().count("\n") == 3
    log(writer, "question 3")
    writer.sync()  # on object storage sync publishes: there is no durable unpublished state
    writer.close()
    assert len(landing_files(s3_home, INTERACTIONS, "2026-03-02")) == 2
    assert landing_days(s3_home) == ["2026-03-02"]
    assert all(str(p).startswith("s3://") for p in writer.completed)

    report = ingest_interactions(s3_home, "2026-03-02", CaptureConfig(), workers=1)
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (4, 4, 0)
    table = read_parquet(s3_home.warehouse(INTERACTIONS, "2026-03-02"))
    assert sorted(table.column("input_text").to_pylist()) == [f"question {i}" for i in range(4)]
    assert "user-0" not in table.column("user_id").to_pylist()  # pseudonymised on the way in


def test_ingestion_with_worker_processes_reads_objects_the_same(s3_home: FlywheelHome) -> None:
    with CaptureWriter(s3_home) as writer:
        for i in range(40):
            log(writer, f"q{i}")
        log(writer, "q0", interaction_id="dup")
        log(writer, "q0", interaction_id="dup")
    one = ingest_interactions(s3_home, "2026-03-02", CaptureConfig(), workers=1)
    rows_one = read_parquet(s3_home.warehouse(INTERACTIONS, "2026-03-02")).sort_by("interaction_id")
    two = ingest_interactions(s3_home, "2026-03-02", CaptureConfig(), workers=2, piece_bytes=1024)
    rows_two = read_parquet(s3_home.warehouse(INTERACTIONS, "2026-03-02")).sort_by("interaction_id")
    assert (one.rows_read, one.rows_accepted, one.rows_quarantined) == (42, 41, 1) == (
        two.rows_read, two.rows_accepted, two.rows_quarantined)
    assert rows_one.equals(rows_two)
