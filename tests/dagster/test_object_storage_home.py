"""The loop with FLYWHEEL_HOME on object storage, through the real Dagster jobs, with the home at
s3://<bucket>/home on a real S3 server on 127.0.0.1 (moto) and the registry in PostgreSQL: the demo's
bootstrap cycle (source admission -> dataset -> retrain -> evaluation -> gate -> promotion and serving
export), then a week of traffic the promoted champion answers (loaded from the bucket) -> capture ->
labeling -> simulated review -> reviewed examples, as the demo's next cycle does before its retrain;
then the CLI on the same home. (The whole small story runs locally in test_end_to_end.py; on S3 it gave
the same scores to the last digit, measured once: 0.2474 / 0.4444 / 0.2553.)"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from flywheel.curation.versions import latest_version
from flywheel.demo.cycles import FIRST_TRAFFIC_WEEK, cycles_for, simulated_review
from flywheel.demo.project import demo_project_dir
from flywheel.demo.run import run_demo
from flywheel.demo.scenario import SMALL, build_files
from flywheel.demo.traffic import serve_week
from flywheel.models import registry
from flywheel.models.artifact import read_artifact, read_candidate, verify_adapter

pytestmark = pytest.mark.slow


def test_the_loop_runs_with_the_home_on_s3(
    s3_home: FlywheelHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("FLYWHEEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FLYWHEEL_HOME", str(s3_home.root))
    monkeypatch.setenv("FLYWHEEL_PROJECT", str(demo_project_dir(s3_home)))
    from jobs.runner import InstanceJobRunner

    with dg.DagsterInstance.get() as instance:
        runner = InstanceJobRunner(instance, quiet=True)
        result = run_demo(runner, s3_home, size=SMALL, cycles=cycles_for(SMALL)[:1])
        (bootstrap,) = result.cycles
        assert bootstrap.outcome == "promoted", bootstrap.reasons[:2]
        champion = registry.current_champion(s3_home.database_url())
        assert champion is not None and champion.version == bootstrap.candidate

        # a week of traffic: the champion (fetched from the bucket) answers, the SDK logs to the bucket
        week = FIRST_TRAFFIC_WEEK.isoformat()
        days = [(FIRST_TRAFFIC_WEEK + timedelta(days=i)).isoformat() for i in range(SMALL.traffic_days)]
        model = read_artifact(s3_home, champion.version, champion.adapter_path)
        served = serve_week(s3_home, days, SMALL, model, champion.version, build_files(SMALL).taken_inputs)
        assert served.requests > 0
        captured = 0
        for day in days:
            out = runner.run("daily_capture", partition_key=day)
            assert out.success, out.error
            captured += int(out.materialized["interactions"]["rows_accepted"])
        assert captured >= served.requests
        assert runner.run("weekly_labeling", partition_key=week).success
        review = simulated_review(s3_home.database_url(), week, served.truth)
        assert review.items > 0 and review.passed + review.fixed > 0
        reviewed = runner.run("weekly_reviewed_examples", partition_key=week)
        assert reviewed.success and (s3_home.warehouse("reviewed_examples") / f"{week}.parquet").is_file()
        runs = instance.get_runs()
        assert {"daily_capture", "weekly_labeling", "weekly_reviewed_examples", "source_admission", "retrain"} <= {
            r.job_name for r in runs}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)

    # everything the loop wrote is in the bucket; nothing landed on the local disk but the cache and the project
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "dagster_home"]
    root = s3_home.root
    for folder in ("landing", "warehouse", "quarantine", "labeling", "datasets", "models", "reports"):
        assert (root / folder).is_dir(), folder
    assert latest_version(s3_home) == bootstrap.dataset_version
    assert (s3_home.dataset(bootstrap.dataset_version) / "train.parquet").is_file()
    candidate = read_candidate(s3_home)
    assert candidate.version == bootstrap.candidate and str(candidate.path).startswith("s3://")
    pointer = json.loads(s3_home.model("candidate.json").read_text())
    assert pointer["path"] == f"models/{bootstrap.candidate}"  # relative to the home, as on a local disk
    verify_adapter(candidate.path)  # fetched to the cache and checked file by file against the manifest
    export = json.loads(s3_home.model("champion.json").read_text())
    assert export["version"] == bootstrap.candidate

    cli = CliRunner()
    status = cli.invoke(app, ["status"])
    assert status.exit_code in (0, 1), status.output  # 1: the doctor found something to act on
    assert bootstrap.candidate[:12] in status.output
    models = cli.invoke(app, ["models", "list", "--home", str(s3_home.root)])
    assert models.exit_code == 0 and bootstrap.candidate[:12] in models.output, models.output
