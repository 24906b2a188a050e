"""What the importer tests share: reading what landed, and running a day's capture on it."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import landing_days, landing_files
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.signals import SIGNALS, compute_signals
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome


def landed(home: FlywheelHome, stream: str = INTERACTIONS) -> list[dict]:
    """Every record in the landing zone of `stream`, all days."""
    return [json.loads(line) for day in landing_days(home, stream) for f in landing_files(home, stream, day)
            for line in f.read_text(encoding="utf-8").splitlines()]


def landed_feedback(home: FlywheelHome) -> list[tuple[str, str, str | None]]:
    return sorted((e["interaction_id"], e["kind"], e["text"]) for e in landed(home, FEEDBACK))


def capture_day(home: FlywheelHome, day: str) -> dict[str, str]:
    """Ingest `day` and compute its signals as the capture assets do; {interaction_id: signal}."""
    report = ingest_interactions(home, day, CaptureConfig(), workers=1)
    assert report.rows_quarantined == 0, report.quarantine_reasons
    compute_signals(home, day, CaptureConfig())
    rows = pq.read_table(home.warehouse(SIGNALS, day)).to_pylist()
    return {r["interaction_id"]: r["signal"] for r in rows}
