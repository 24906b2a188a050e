"""Calendar schedules pick the right partitions; the metric-drop sensor starts `retrain` once per
cooldown with its reason in the tags; a failed run is POSTed to a real local webhook."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

import schedules
import sensors
from assets.resources import FlywheelResource
from definitions import defs
from flywheel.config import AutomationConfig
from flywheel.core.quarters import current_quarter
from flywheel.core.storage import FlywheelHome
from schedules.calendar import build_calendar_schedules
from sensors.alerts import run_failure_alert
from sensors.retrain import metric_drop_sensor
from tests.ops.test_monitoring import fill, webhook  # noqa: F401  (fixture)


def _by_name(defs: list[dg.ScheduleDefinition]) -> dict[str, dg.ScheduleDefinition]:
    return {s.name: s for s in defs}


def _request(schedule: dg.ScheduleDefinition, at: datetime) -> dg.RunRequest:
    request = schedule(dg.build_schedule_context(scheduled_execution_time=at))
    assert isinstance(request, dg.RunRequest)
    return request


def test_calendar_schedules_are_collected() -> None:
    names = {s.name for s in schedules.ALL_SCHEDULES}
    assert {"daily_capture_schedule", "weekly_labeling_schedule", "quarterly_retrain_schedule"} <= names
    sensor_names = {s.name for s in sensors.ALL_SENSORS}
    assert {"metric_drop_sensor", "run_failure_alert"} <= sensor_names


def test_partitions_picked_by_the_calendar_schedules() -> None:
    s = _by_name(build_calendar_schedules(AutomationConfig()))
    assert s["daily_capture_schedule"].cron_schedule == "15 0 * * *"
    assert s["daily_capture_schedule"].default_status == dg.DefaultScheduleStatus.STOPPED
    day = _request(s["daily_capture_schedule"], datetime(2026, 11, 3, 0, 15, tzinfo=UTC))
    assert day.partition_key == "2026-11-02" and day.run_key == "capture:2026-11-02"
    # Monday 2026-11-09 07:00: the week that just ended is the one starting Monday 2026-11-02
    week = _request(s["weekly_labeling_schedule"], datetime(2026, 11, 9, 7, 0, tzinfo=UTC))
    assert week.partition_key == "2026-11-02"
    # the first day of 2026-Q4: the quarter that just closed (2026-Q3) is retrained
    quarter = _request(s["quarterly_retrain_schedule"], datetime(2026, 10, 1, 3, 0, tzinfo=UTC))
    assert quarter.partition_key == "2026-07-01" and quarter.run_key == "retrain:2026-07-01"
    assert quarter.tags["flywheel/trigger"] == "schedule" and "2026-Q3" in quarter.tags["flywheel/reason"]


def test_time_zone_from_the_project_keeps_utc_partitions() -> None:
    s = _by_name(build_calendar_schedules(AutomationConfig(timezone="America/Los_Angeles")))
    cap = s["daily_capture_schedule"]
    assert cap.execution_timezone == "America/Los_Angeles"
    # 00:15 in Los Angeles on Nov 3 is 08:15 UTC on Nov 3: the last complete UTC day is Nov 2
    la_time = datetime(2026, 11, 3, 8, 15, tzinfo=UTC)
    assert _request(cap, la_time).partition_key == "2026-11-02"
    # Sydney: Monday 07:00 local is Sunday 20:00 UTC; that UTC week is not over, so the one before
    s2 = _by_name(build_calendar_schedules(AutomationConfig(timezone="Australia/Sydney")))
    assert _request(s2["weekly_labeling_schedule"], datetime(2026, 11, 8, 20, 0, tzinfo=UTC)).partition_key == "2026-10-26"


@pytest.fixture
def resource(tmp_path: Path, project_dir: Path) -> FlywheelResource:
    return FlywheelResource(project_dir=str(project_dir), home_dir=str(tmp_path / "home"))


def test_metric_drop_sensor_triggers_once_per_cooldown(resource: FlywheelResource) -> None:
    home = resource.home()
    now = datetime.now(UTC)
    fill(home, now - timedelta(days=6), 7, negatives=5, total=10)  # 50% over the last week
    context = dg.build_sensor_context(resources={"flywheel": resource}, definitions=defs)
    first = metric_drop_sensor.evaluate_tick(context)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.run_key == f"metric_drop:{now.date().isoformat()}"
    assert request.partition_key == current_quarter(now)  # a metric drop retrains the quarter still open
    assert request.tags["flywheel/trigger"] == "metric_drop"
    assert "exceeds the threshold" in request.tags["flywheel/reason"]
    assert first.cursor and "last_triggered" in first.cursor

    second = metric_drop_sensor.evaluate_tick(dg.build_sensor_context(resources={"flywheel": resource}, cursor=first.cursor,
                                                                      definitions=defs))
    assert not second.run_requests
    assert "cooldown" in second.skip_message


def test_metric_drop_sensor_skips_healthy_traffic(resource: FlywheelResource) -> None:
    fill(FlywheelHome(resource.home_dir), datetime.now(UTC) - timedelta(days=6), 7, negatives=1, total=10)
    result = metric_drop_sensor.evaluate_tick(dg.build_sensor_context(resources={"flywheel": resource}))
    assert not result.run_requests and "within bounds" in result.skip_message


@dg.op
def explode() -> None:
    raise ValueError("landing file unreadable: row 3 is not JSON")


@dg.job
def failing_job() -> None:
    explode()


def test_run_failure_alert_posts_to_the_webhook(resource: FlywheelResource, webhook, monkeypatch) -> None:  # noqa: F811
    url, received = webhook
    monkeypatch.setenv("FLYWHEEL_ALERT_WEBHOOK", url)
    instance = dg.DagsterInstance.ephemeral()
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False, tags={"flywheel/trigger": "test"})
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"flywheel": resource},
    ).for_run_failure()
    run_failure_alert(context)
    assert len(received) == 1
    body = received[0]["body"]
    assert body["job"] == "failing_job" and body["run_id"] == result.run_id
    assert "row 3 is not JSON" in body["error"]
    assert body["tags"] == {"flywheel/trigger": "test"}
    assert body["text"].startswith("flywheel: job 'failing_job' failed")


def test_run_failure_alert_without_webhook_only_logs(resource: FlywheelResource, webhook, monkeypatch) -> None:  # noqa: F811
    _, received = webhook
    monkeypatch.delenv("FLYWHEEL_ALERT_WEBHOOK", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_event=result.get_run_failure_event(), dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"flywheel": resource},
    ).for_run_failure()
    run_failure_alert(context)
    assert received == []


def _land_days(home: FlywheelHome, days: list[str]) -> None:
    from flywheel.capture.sdk import CaptureWriter
    from flywheel.demo.scenario import ANSWERS, SMALL, react, simulate_requests

    with CaptureWriter(home) as writer:
        for day in days:
            for k, req in enumerate(simulate_requests(day, SMALL)):
                output = ANSWERS[req.intent] if k % 3 else ANSWERS["out_of_scope"]  # a model right 2 times in 3
                writer.log_interaction([{"role": "user", "content": req.text}], output, session_id=req.session_id,
                                       user_id=req.user_id, model_version="m1", latency_ms=req.latency_ms,
                                       interaction_id=req.interaction_id, ts=req.ts)
                for fb in react(req, output).feedback:
                    writer.log_feedback(fb["interaction_id"], fb["kind"], text=fb.get("text"), ts=fb["ts"])


def test_backfill_equals_one_by_one_runs(tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`flywheel backfill capture --from --to` through a persistent instance writes the same Parquet
    files as running each day's partition on its own."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from flywheel.cli import app
    from jobs.runner import InstanceJobRunner

    days = ["2026-10-26", "2026-10-27", "2026-10-28"]
    one_by_one = FlywheelHome(tmp_path / "one_by_one")
    backfilled = FlywheelHome(tmp_path / "backfilled")
    for home in (one_by_one, backfilled):
        _land_days(home, days)
    monkeypatch.setenv("FLYWHEEL_PROJECT", str(project_dir))
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)

    instance = dg.DagsterInstance.ephemeral()
    runner = InstanceJobRunner(instance, FlywheelResource(project_dir=str(project_dir), home_dir=str(one_by_one.root)))
    for day in reversed(days):  # any order: every partition reads and writes only its own files
        assert runner.run("daily_capture", partition_key=day).success

    # no $DAGSTER_HOME: the backfill uses ./.dagster, the instance `make ui` opens
    monkeypatch.setenv("DAGSTER_HOME", "unset below; restored after the test")
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLYWHEEL_HOME", str(backfilled.root))
    result = CliRunner().invoke(app, ["backfill", "capture", "--from", days[0], "--to", days[-1]])
    assert result.exit_code == 0, result.output
    assert Path(os.environ["DAGSTER_HOME"]) == tmp_path / ".dagster"
    assert result.output.count(": ok run ") == len(days)
    with dg.DagsterInstance.get() as persistent:
        runs = persistent.get_runs(dg.RunsFilter(job_name="daily_capture"))
        assert sorted(r.tags["dagster/partition"] for r in runs) == days
        assert all(r.tags["flywheel/trigger"] == "backfill" for r in runs)

    for asset in ("interactions", "interaction_signals"):
        for day in days:
            a = pq.read_table(one_by_one.warehouse(asset, day))
            b = pq.read_table(backfilled.warehouse(asset, day))
            assert a.num_rows > 0 and a.equals(b), f"{asset} {day} differs"


def test_backfill_rejects_a_bad_range() -> None:
    from typer.testing import CliRunner

    from flywheel.cli import app

    result = CliRunner().invoke(app, ["backfill", "capture", "--from", "2026-11-02", "--to", "2026-11-01"])
    assert result.exit_code == 2 and "is before" in result.output
    result = CliRunner().invoke(app, ["backfill", "training", "--from", "2026-11-01", "--to", "2026-11-01"])
    assert result.exit_code == 2 and "unknown step" in result.output
    result = CliRunner().invoke(app, ["backfill", "retrain", "--from", "2026-Q3", "--to", "2026-Q2"])
    assert result.exit_code == 2 and "is before" in result.output
    result = CliRunner().invoke(app, ["backfill", "retrain", "--from", "2025-Q4", "--to", "2026-Q1"])
    assert result.exit_code == 2 and "outside the retrain quarters (2026-01-01.." in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["backfill", "capture", "--from", "2025-12-30", "--to", "2026-01-02"])
    assert result.exit_code == 2 and "outside the capture partitions (2026-01-01.." in " ".join(result.output.split())
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    result = CliRunner().invoke(app, ["backfill", "labeling", "--from", "2026-11-02", "--to", tomorrow])
    assert result.exit_code == 2 and "outside the labeling partitions" in " ".join(result.output.split())


def test_weekly_partition_keys() -> None:
    from jobs.runner import partition_keys

    assert partition_keys("labeling", "2026-10-28", "2026-11-09") == ["2026-10-26", "2026-11-02", "2026-11-09"]
    assert partition_keys("capture", "2026-10-31", "2026-11-02") == ["2026-10-31", "2026-11-01", "2026-11-02"]
