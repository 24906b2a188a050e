"""Retention: landing days past `capture.retention_days` are deleted once captured (and only then);
the asset check lists what is still there past retention."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import dagster as dg

from assets.capture import interaction_signals, interactions, landing_retention
from assets.resources import FlywheelResource
from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import landing_days, landing_files
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.retention import apply_retention, past_retention, retention_cutoff
from flywheel.capture.sdk import CaptureWriter
from flywheel.capture.signals import compute_signals
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome

DAYS = ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"]
TODAY = date(2026, 1, 17)  # with 10 days of retention, days before 2026-01-07 are past it


def _log_days(home: FlywheelHome, days: list[str]) -> dict[str, str]:
    ids = {}
    with CaptureWriter(home) as w:
        for day in days:
            ids[day] = w.log_interaction([{"role": "user", "content": f"question of {day}"}], "answer",
                                         session_id="s", user_id="u", model_version="m", latency_ms=1,
                                         ts=f"{day}T12:00:00Z")
            w.log_feedback(ids[day], "thumbs_up", ts=f"{day}T12:01:00Z")
    return ids


def _capture(home: FlywheelHome, day: str, config: CaptureConfig) -> None:
    ingest_interactions(home, day, config)
    compute_signals(home, day, config)


def test_retention_is_off_by_default(home: FlywheelHome) -> None:
    _log_days(home, DAYS[:1])
    _capture(home, DAYS[0], CaptureConfig())
    assert retention_cutoff(CaptureConfig(), TODAY) is None
    report = apply_retention(home, CaptureConfig(), TODAY)
    assert report.deleted_days == [] and past_retention(home, CaptureConfig(), TODAY) == {}
    assert landing_files(home, INTERACTIONS, DAYS[0])


def test_captured_days_past_retention_are_deleted_the_others_kept_with_a_reason(home: FlywheelHome) -> None:
    config = CaptureConfig(retention_days=10)
    _log_days(home, DAYS)
    assert retention_cutoff(config, TODAY) == "2026-01-07"
    # nothing captured: every day past retention is kept, with the reason
    report = apply_retention(home, config, TODAY)
    assert report.deleted_days == [] and set(report.kept) == {"2026-01-05", "2026-01-06"}
    assert "not captured yet" in report.kept["2026-01-05"]

    _capture(home, "2026-01-05", config)
    report = apply_retention(home, config, TODAY)
    assert report.deleted_days == ["2026-01-05"] and report.deleted_files == 2 and report.deleted_bytes > 0
    assert "2026-01-05" not in landing_days(home, INTERACTIONS) + landing_days(home, FEEDBACK)
    assert home.warehouse(INTERACTIONS, "2026-01-05").exists()  # only landing files go
    assert "not captured yet" in report.kept["2026-01-06"]

    # a file landing after its day's capture keeps the day until it is captured again
    _capture(home, "2026-01-06", config)
    late = home.landing(FEEDBACK, "2026-01-06") / "late.jsonl"
    late.write_text('{"interaction_id": "x", "ts": "2026-01-06T13:00:00Z", "kind": "copy"}\n')
    future = time.time() + 5
    os.utime(late, (future, future))
    report = apply_retention(home, config, TODAY)
    assert report.deleted_days == [] and "changed after the capture" in report.kept["2026-01-06"]
    time.sleep(0.01)
    _capture(home, "2026-01-06", config)
    os.utime(home.warehouse(INTERACTIONS, "2026-01-06"), (future + 1, future + 1))
    os.utime(home.warehouse("interaction_signals", "2026-01-06"), (future + 1, future + 1))
    os.utime(home.warehouse("interaction_signals", "2026-01-05"), (future + 1, future + 1))
    report = apply_retention(home, config, TODAY)
    assert report.deleted_days == ["2026-01-06"]
    assert landing_days(home, INTERACTIONS) == ["2026-01-07", "2026-01-08"]  # within retention: kept


def test_a_day_waits_while_the_day_before_it_still_needs_its_files(home: FlywheelHome) -> None:
    config = CaptureConfig(retention_days=10)
    _log_days(home, DAYS[:2])
    _capture(home, "2026-01-06", config)  # 01-05 not captured: its signals will read 01-06's files
    report = apply_retention(home, config, TODAY)
    assert report.deleted_days == []
    assert "2026-01-05" in report.kept["2026-01-06"]


def test_the_capture_job_deletes_past_retention_and_the_check_reports_what_is_left(
    tmp_path: Path, home: FlywheelHome
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flywheel.yaml").write_text("capture:\n  retention_days: 1\n")
    resource = FlywheelResource(project_dir=str(project), home_dir=str(home.root))
    _log_days(home, DAYS[:3])  # years before today: all past retention

    def run(day: str) -> dg.ExecuteInProcessResult:
        return dg.materialize([interactions, interaction_signals, landing_retention], partition_key=day,
                              resources={"flywheel": resource})

    first = run("2026-01-06")  # 01-05 is not captured, and its capture reads 01-06: nothing may go yet
    retention = next(c for c in first.get_asset_check_evaluations() if c.check_name == "landing_retention")
    assert not retention.passed and retention.metadata["days_past_retention"].value == 3
    reasons = retention.metadata["days"].data
    assert "not captured yet" in reasons["2026-01-05"] and "2026-01-05" in reasons["2026-01-06"]
    meta = run("2026-01-05").asset_materializations_for_node("interaction_signals")[0].metadata
    assert meta["landing_days_deleted"].value == 2 and meta["retention_cutoff"].value > "2026-01-06"  # today minus the retention: after every day here
    assert landing_days(home, INTERACTIONS) == ["2026-01-07"]
    result = run("2026-01-07")
    retention = next(c for c in result.get_asset_check_evaluations() if c.check_name == "landing_retention")
    assert retention.passed, retention.metadata
    assert landing_days(home, INTERACTIONS) == landing_days(home, FEEDBACK) == []
