"""The loop with FLYWHEEL_HOME on object storage: the demo's small scenario (bootstrap, then a week of
traffic the champion answers -> capture -> labeling -> simulated review -> source admission -> dataset ->
retrain -> evaluation -> gate) through the real Dagster jobs, with the home at s3://<bucket>/home on a
real S3 server on 127.0.0.1 (moto) and the registry in PostgreSQL; then the CLI on the same home."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from flywheel.curation.versions import latest_version
from flywheel.demo.cycles import cycles_for
from flywheel.demo.project import demo_project_dir
from flywheel.demo.run import run_demo
from flywheel.demo.scenario import SMALL
from flywheel.models import registry
from flywheel.models.artifact import read_candidate, verify_adapter

pytestmark = pytest.mark.slow


def test_the_small_story_runs_with_the_home_on_s3(
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
        result = run_demo(InstanceJobRunner(instance, quiet=True), s3_home, size=SMALL, cycles=cycles_for(SMALL)[:2])
        first, second = result.cycles
        assert [c.outcome for c in result.cycles] == ["promoted", "promoted"], [c.reasons[:2] for c in result.cycles]
        assert second.traffic and second.review is not None and second.review.items > 0
        assert "synthetic_batch_job.jsonl" in second.held_out
        runs = instance.get_runs()
        assert {"daily_capture", "weekly_labeling", "weekly_reviewed_examples", "source_admission", "retrain"} <= {
            r.job_name for r in runs}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)

    # everything the loop wrote is in the bucket; nothing landed on the local disk but the cache and the project
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "dagster_home"]
    root = s3_home.root
    for folder in ("landing", "warehouse", "quarantine", "labeling", "datasets", "models", "reports"):
        assert (root / folder).is_dir(), folder
    assert latest_version(s3_home) == second.dataset_version
    assert (s3_home.dataset(second.dataset_version) / "train.parquet").is_file()
    candidate = read_candidate(s3_home)
    assert candidate.version == second.candidate and str(candidate.path).startswith("s3://")
    pointer = json.loads(s3_home.model("candidate.json").read_text())
    assert pointer["path"] == f"models/{second.candidate}"  # relative to the home, as on a local disk
    verify_adapter(candidate.path)  # fetched to the cache and checked file by file against the manifest
    champion = registry.current_champion(s3_home.database_url())
    assert champion is not None and champion.version == second.candidate
    export = json.loads(s3_home.model("champion.json").read_text())
    assert export["version"] == second.candidate

    cli = CliRunner()
    status = cli.invoke(app, ["status"])
    assert status.exit_code in (0, 1), status.output  # 1: the doctor found something to act on
    assert second.candidate[:12] in status.output
    models = cli.invoke(app, ["models", "list", "--home", str(s3_home.root)])
    assert models.exit_code == 0 and second.candidate[:12] in models.output, models.output
