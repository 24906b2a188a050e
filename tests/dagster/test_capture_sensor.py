"""The landing sensor: new completed files start the day's capture run (and the day before's)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

import definitions
from assets.resources import FlywheelResource
from flywheel.capture.sdk import CaptureWriter
from flywheel.core.storage import FlywheelHome
from sensors import ALL_SENSORS
from sensors.capture import capture_landing_sensor


def _ask(w: CaptureWriter, ts: str) -> None:
    w.log_interaction([{"role": "user", "content": "hi"}], "hello", session_id="s", user_id="u",
                      model_version="m", latency_ms=1.0, ts=ts)  # fmt: skip


_INSTANCE = dg.DagsterInstance.ephemeral()


def _tick(home: FlywheelHome, cursor: str | None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(
        instance=_INSTANCE, cursor=cursor, resources={"flywheel": FlywheelResource(home_dir=str(home.root))}
    )
    return capture_landing_sensor(ctx)


def test_sensor_requests_changed_days_with_file_set_run_keys(home: FlywheelHome) -> None:
    assert capture_landing_sensor in ALL_SENSORS
    assert capture_landing_sensor.job_name == "daily_capture"
    assert "capture_landing_sensor" in {s.name for s in definitions.defs.sensors or []}
    today = datetime.now(UTC).date().isoformat()
    with CaptureWriter(home) as w:
        _ask(w, "2026-01-05T10:00:00Z")
        _ask(w, "2026-01-07T10:00:00Z")
        _ask(w, f"{today}T00:00:00Z")  # today is not a partition yet
    (home.landing("interactions", "2026-01-05") / ".half.jsonl.tmp").write_text("{")  # in progress: ignored

    first = _tick(home, None)
    assert [r.partition_key for r in first.run_requests] == ["2026-01-05", "2026-01-07"]
    assert all(r.run_key.startswith(f"capture:{r.partition_key}:") for r in first.run_requests)
    assert today not in json.loads(first.cursor)

    assert _tick(home, first.cursor).run_requests == []  # nothing new

    with CaptureWriter(home) as w:  # feedback landing on the 6th is late feedback for the 5th
        _ask(w, "2026-01-07T11:00:00Z")
        w.log_feedback("some-id", "copy", ts="2026-01-06T09:00:00Z")
    second = _tick(home, first.cursor)
    keys = {r.partition_key: r.run_key for r in second.run_requests}
    assert sorted(keys) == ["2026-01-05", "2026-01-07"]  # the 6th has no interactions: nothing to capture
    assert keys["2026-01-07"] != first.run_requests[1].run_key

    with CaptureWriter(home) as w:
        _ask(w, "2026-01-06T12:00:00Z")
    third = _tick(home, second.cursor)
    assert sorted(r.partition_key for r in third.run_requests) == ["2026-01-05", "2026-01-06"]


def test_sensor_skips_days_before_the_partitions_start(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        _ask(w, "2020-01-01T00:00:00Z")
        _ask(w, (datetime.now(UTC) - timedelta(days=2)).isoformat())
    result = _tick(home, None)
    assert [r.partition_key for r in result.run_requests] == [(datetime.now(UTC) - timedelta(days=2)).date().isoformat()]


def test_sensor_skips_a_day_already_captured_from_the_same_files(home: FlywheelHome, tmp_path) -> None:
    """A day run by hand (or a backfill, or the demo) is not run again when the sensor first ticks."""
    from assets.capture import interaction_signals, interactions

    with CaptureWriter(home) as w:
        _ask(w, "2026-02-02T10:00:00Z")
        _ask(w, "2026-02-03T10:00:00Z")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"flywheel": FlywheelResource(home_dir=str(home.root), project_dir=str(tmp_path))}
    assert dg.materialize([interactions, interaction_signals], partition_key="2026-02-02", instance=instance,
                          resources=resources).success

    def tick(cursor: str | None) -> dg.SensorResult:
        return capture_landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))

    first = tick(None)
    assert [r.partition_key for r in first.run_requests] == ["2026-02-03"]
    assert "2026-02-02" in json.loads(first.cursor)
    with CaptureWriter(home) as w:  # a new file for the 2nd changes its inputs: it runs again
        _ask(w, "2026-02-02T11:00:00Z")
    assert [r.partition_key for r in tick(first.cursor).run_requests] == ["2026-02-02"]


def test_a_day_is_requested_again_when_a_file_is_fixed_in_place(home: FlywheelHome) -> None:
    """The day's run (failed, or quarantined a row) is not asked again for the same files, but is
    as soon as a file is fixed, even by an edit that keeps its size."""
    with CaptureWriter(home) as w:
        _ask(w, "2026-01-05T10:00:00Z")
    (path,) = home.landing("interactions", "2026-01-05").iterdir()
    first = _tick(home, None)
    assert [r.partition_key for r in first.run_requests] == ["2026-01-05"]
    assert _tick(home, first.cursor).run_requests == []  # the same files: not again
    text = path.read_text()
    path.write_text(text.replace('"hello"', '"hallo"'))  # a fix of the same size
    later = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))  # a coarse file system clock still moves
    again = _tick(home, first.cursor)
    assert [r.partition_key for r in again.run_requests] == ["2026-01-05"]
    assert again.run_requests[0].run_key != first.run_requests[0].run_key


def test_the_sensor_publishes_a_killed_writers_file_and_requests_its_day(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        _ask(w, "2026-01-05T10:00:00Z")
    first = _tick(home, None)
    folder = home.landing("interactions", "2026-01-07")
    folder.mkdir(parents=True)
    orphan = folder / ".host-1-dead.jsonl.tmp"
    (logged,) = home.landing("interactions", "2026-01-05").iterdir()
    orphan.write_bytes(logged.read_bytes().replace(b"2026-01-05", b"2026-01-07"))
    os.utime(orphan, (time.time() - 7_200,) * 2)
    result = _tick(home, first.cursor)
    assert [r.partition_key for r in result.run_requests] == ["2026-01-07"]
    assert [p.name for p in folder.iterdir()] == ["host-1-dead.recovered.jsonl"]
