"""The capture job on a Dagster instance configured by the repo's deploy/dagster.yaml (PostgreSQL storage)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

import definitions
from flywheel.capture.sdk import CaptureWriter
from flywheel.core.storage import FlywheelHome
from tests.shared_data import REPO

DAY = "2026-01-05"


@pytest.mark.postgres
def test_capture_job_run_and_materializations_are_stored_in_postgres(
    tmp_path: Path, pg_url: str, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    url = sa.engine.make_url(pg_url)
    for key, value in {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_USER": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
        "FLYWHEEL_HOME": str(tmp_path / "home"),
        "FLYWHEEL_PROJECT": str(project_dir),
    }.items():
        monkeypatch.setenv(key, value)

    with CaptureWriter(FlywheelHome(tmp_path / "home")) as writer:
        for i in range(5):
            iid = writer.log_interaction([{"role": "user", "content": f"question {i}"}], "answer", session_id=f"s{i}",
                                         user_id="u", model_version="m", latency_ms=3.0, ts=f"{DAY}T10:0{i}:00Z")  # fmt: skip
            writer.log_feedback(iid, "thumbs_up", ts=f"{DAY}T11:00:00Z")

    job = definitions.defs.resolve_job_def("daily_capture")
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = job.execute_in_process(instance=instance, partition_key=DAY)
        assert result.success
        run_id = result.run_id

    with dg.DagsterInstance.from_config(str(dagster_home)) as fresh:  # read back through a new instance
        run = fresh.get_run_by_id(run_id)
        assert (
            run is not None
            and run.status == dg.DagsterRunStatus.SUCCESS
            and run.tags["dagster/partition"] == DAY
        )
        for key, count_field, expected in (
            ("interactions", "rows_accepted", 5),
            ("interaction_signals", "signal_positive", 5),
        ):
            records = fresh.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[DAY]), limit=1
            ).records
            assert records and records[0].run_id == run_id
            assert records[0].asset_materialization.metadata[count_field].value == expected

    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT status, pipeline_name FROM runs WHERE run_id = :r"), {"r": run_id}
            ).all()
            events = conn.execute(
                sa.text(
                    "SELECT count(*) FROM event_logs WHERE run_id = :r AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                ),
                {"r": run_id},
            ).scalar()
    finally:
        engine.dispose()
    assert rows == [("SUCCESS", "daily_capture")]
    assert events == 2
