"""The whole loop through the real Dagster jobs on a persistent instance: the reduced demo scenario
(bootstrap, then a week of simulated traffic -> capture -> labeling -> simulated review -> reviewed
examples -> retrain -> evaluation -> gate -> promotion) in a temp DAGSTER_HOME and FLYWHEEL_HOME."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from flywheel.core.storage import FlywheelHome
from flywheel.demo.run import run_demo
from flywheel.demo.scenario import SMALL
from flywheel.models import registry
from flywheel.models.history import score_history

pytestmark = pytest.mark.slow


def test_two_cycles_promote_and_the_score_rises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = FlywheelHome(tmp_path / "home")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("FLYWHEEL_HOME", str(home.root))
    monkeypatch.setenv("FLYWHEEL_PROJECT", str(home.path("demo-project")))
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    from jobs.runner import InstanceJobRunner

    with dg.DagsterInstance.get() as instance:
        result = run_demo(InstanceJobRunner(instance, quiet=True), home, size=SMALL)
        first, second = result.cycles
        assert first.promoted and second.promoted, [c.blocked_reason for c in result.cycles]
        assert second.scores["overall"] > first.scores["overall"]
        assert second.scores["messy"] > first.scores["messy"]
        assert second.by_source.get("real", 0) + second.by_source.get("human_fixed", 0) > 0
        assert second.review is not None and second.review.items > 0

        champion = registry.current_champion(home.database_url())
        assert champion is not None and champion.version == second.candidate
        history = score_history(home.database_url(), 1)
        assert [r["candidate"] for r in history] == [first.candidate, second.candidate]

        runs = instance.get_runs()
        jobs = {r.job_name for r in runs}
        assert {"daily_capture", "weekly_labeling", "weekly_reviewed_examples", "retrain"} <= jobs
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert instance.get_latest_materialization_event(dg.AssetKey("champion_model")) is not None

    assert result.report.exists() and (home.reports() / "demo_scores.png").exists()
