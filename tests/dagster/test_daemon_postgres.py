"""A real `dagster-daemon` on the repo's deploy/dagster.yaml (PostgreSQL storage, queued runs): a landing file
-> the landing sensor's tick -> a real `daily_capture` run in its own process -> materializations stored in PostgreSQL; and a
daemon killed mid-way and restarted neither loses nor duplicates runs (run_key dedupe)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from flywheel.capture.sdk import CaptureWriter
from flywheel.core.storage import FlywheelHome
from tests.shared_data import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


DAEMON = Path(sys.executable).parent / "dagster-daemon"
TIMEOUT_S = 150  # generous: a loaded 2-core machine; a quiet one needs ~30 s per test


@pytest.fixture
def deployment(tmp_path: Path, pg_url: str, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """A DAGSTER_HOME holding the repo's deploy/dagster.yaml (PostgreSQL storage from DAGSTER_PG_*, queued
    runs, run monitoring) pointed at a fresh database, a workspace.yaml loading the repo's
    definitions, and a FLYWHEEL_HOME."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    url = sa.engine.make_url(pg_url)
    pg_env = {"DAGSTER_PG_HOST": url.host or "127.0.0.1", "DAGSTER_PG_PORT": str(url.port or 5432),
              "DAGSTER_PG_USER": url.username or "postgres", "DAGSTER_PG_PASSWORD": url.password or "",
              "DAGSTER_PG_DB": url.database or ""}
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: definitions\n"
        f"      location_name: flywheel\n      working_directory: {REPO}\n",
        encoding="utf-8",
    )
    home = FlywheelHome(tmp_path / "home")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "FLYWHEEL_HOME": str(home.root),
        "FLYWHEEL_PROJECT": str(project_dir),
        "PYTHONPATH": str(REPO),
        **pg_env,
    }
    env.pop("FLYWHEEL_DATABASE_URL", None)
    env.pop("FLYWHEEL_ALERT_WEBHOOK", None)
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [str(DAEMON), "run", "-w", str(workspace)], cwd=REPO, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"daemon{len(started)}.log", "wb"),
        )
        started.append(proc)
        return proc

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    for key, value in pg_env.items():
        monkeypatch.setenv(key, value)
    instance = dg.DagsterInstance.get()
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"  # the shipped file, not a stand-in
    try:
        yield {"home": home, "instance": instance, "start": start, "pg_url": pg_url, "logs": tmp_path}
    finally:
        for proc in started:  # the daemon's session: the daemon, its code server and run workers
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        instance.dispose()


def land(home: FlywheelHome, day: str, n: int) -> None:
    """Completed landing files for `day` written by the capture SDK."""
    with CaptureWriter(home) as writer:
        for i in range(n):
            ts = datetime.fromisoformat(f"{day}T10:{i:02d}:00").replace(tzinfo=UTC)
            writer.log_interaction([{"role": "user", "content": f"how do i reset my pw {i}"}], "Go to Settings.",
                                   session_id=f"s{i}", user_id=f"u{i}", model_version="m1", latency_ms=100.0,
                                   interaction_id=f"{day}-{i}", ts=ts)


def capture_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name="daily_capture")))


def wait_for(predicate, what: str, logs: Path, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    tail = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("daemon*.log")))
    pytest.fail(f"timed out waiting for {what}; daemon logs:\n{tail}")


def done(instance: dg.DagsterInstance, n: int) -> bool:
    runs = capture_runs(instance)
    return len(runs) >= n and all(r.is_finished for r in runs)


def test_landing_file_starts_a_capture_run_stored_in_postgres(deployment: dict) -> None:
    home, instance = deployment["home"], deployment["instance"]
    land(home, "2026-10-26", 5)
    deployment["start"]()
    wait_for(lambda: done(instance, 1), "the landing sensor's capture run", deployment["logs"])
    (run,) = capture_runs(instance)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == "2026-10-26" and run.tags["flywheel/trigger"] == "landing"
    assert run.tags["dagster/sensor_name"] == "capture_landing_sensor"
    event = instance.get_latest_materialization_event(dg.AssetKey("interactions"))
    assert event is not None and event.run_id == run.run_id
    assert event.asset_materialization.metadata["rows_accepted"].value == 5
    assert home.warehouse("interactions", "2026-10-26").exists()
    # the same facts straight from the PostgreSQL tables
    engine = sa.create_engine(deployment["pg_url"])
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT run_id, status FROM runs WHERE pipeline_name = 'daily_capture'")).all()
            mats = conn.execute(sa.text(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND run_id = :r"),
                {"r": run.run_id}).scalar()
    finally:
        engine.dispose()
    assert [(r.run_id, r.status) for r in runs] == [(run.run_id, "SUCCESS")]
    assert mats == 2  # interactions + interaction_signals


def test_daemon_killed_and_restarted_neither_loses_nor_duplicates_runs(deployment: dict) -> None:
    home, instance = deployment["home"], deployment["instance"]
    days = ["2026-10-26", "2026-10-27"]
    for day in days:
        land(home, day, 3)
    first = deployment["start"]()
    wait_for(lambda: len(capture_runs(instance)) >= 1, "the first run request", deployment["logs"])
    os.kill(first.pid, signal.SIGKILL)  # the daemon dies mid-way (its run workers may still be running)
    first.wait(timeout=10)
    deployment["start"]()
    wait_for(lambda: done(instance, len(days)), "all capture runs after the restart", deployment["logs"])
    time.sleep(3)  # a further sensor tick must not add runs
    runs = capture_runs(instance)
    keys = sorted(r.tags["dagster/partition"] for r in runs)
    assert keys == days, f"expected one run per day, got {keys}"
    assert len({r.tags["dagster/run_key"] for r in runs}) == len(runs)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    for day in days:
        assert home.warehouse("interactions", day).exists()
