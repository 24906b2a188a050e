"""The whole loop through the real Dagster jobs on a persistent instance: the reduced demo scenario
(bootstrap; a week of traffic the champion answers -> capture -> labeling -> simulated review -> reviewed
examples, a broken generator's file held out by its admission sample -> retrain -> promoted; a recipe
change -> blocked) in a temp DAGSTER_HOME and FLYWHEEL_HOME. This test guards the demo's story."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.quarters import all_quarters, read_quarter
from flywheel.core.storage import FlywheelHome
from flywheel.curation.versions import latest_version
from flywheel.demo.run import run_demo
from flywheel.demo.scenario import SMALL
from flywheel.models import registry
from flywheel.models.history import score_history

pytestmark = pytest.mark.slow


def test_the_small_story_promoted_promoted_blocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reduced demo through the real jobs: the bootstrap and a week of reviewed traffic are promoted
    with intervals above zero, the broken generator's file is held out by its admission sample, and the
    recipe change is blocked with its regression named; every run succeeds (blocked is an outcome)."""
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
        first, second, third = result.cycles
        assert [c.outcome for c in result.cycles] == ["promoted", "promoted", "blocked"], \
            [(c.outcome, c.reasons[:2]) for c in result.cycles]
        for promoted in (first, second):
            assert promoted.interval is not None and promoted.interval[0] > 0
        assert second.scores["overall"] > first.scores["overall"]
        assert second.by_source.get("real", 0) + second.by_source.get("human_fixed", 0) > 0
        assert second.review is not None and second.review.items > 0
        assert second.served is not None and second.served.requests > 0
        assert "synthetic_batch_job.jsonl" in second.held_out
        assert third.interval is not None and third.interval[1] < 0
        assert third.reasons[0].startswith("regression")

        champion = registry.current_champion(home.database_url())
        assert champion is not None and champion.version == second.candidate
        history = score_history(home.database_url(), 1)
        assert [(r["candidate"], r["outcome"]) for r in history] == [
            (first.candidate, "promoted"), (second.candidate, "promoted"), (third.candidate, "blocked")]

        runs = instance.get_runs()
        jobs = {r.job_name for r in runs}
        assert {"daily_capture", "weekly_labeling", "weekly_reviewed_examples", "source_admission", "retrain"} <= jobs
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        retrains = sorted((r for r in runs if r.job_name == "retrain"), key=lambda r: r.tags["flywheel/demo-cycle"])
        assert [r.tags.get("flywheel/outcome") for r in retrains] == ["promoted", "promoted", "blocked"]
        assert [r.tags.get("dagster/partition") for r in retrains] == ["2026-07-01", "2026-10-01", "2026-10-01"]
        assert instance.get_latest_materialization_event(dg.AssetKey("champion_model")) is not None
        assert [(q["label"], q["outcome"]) for q in all_quarters(home)] == [("2026-Q3", "promoted"), ("2026-Q4", "blocked")]

        # a retrain backfill of two past quarters: each rebuilt from what was reviewed before its end, trained
        # and scored on the frozen set; the champion, LATEST and the newest quarter's record stay
        latest, q4 = latest_version(home), read_quarter(home, "2026-Q4")
        backfill = CliRunner().invoke(app, ["backfill", "retrain", "--from", "2026-Q2", "--to", "2026-Q3"])
        assert backfill.exit_code == 0, backfill.output
        assert "retrain 2026-04-01: ok" in backfill.output and "retrain 2026-07-01: ok" in backfill.output
        after = registry.current_champion(home.database_url())
        assert after is not None and after.version == second.candidate
        assert latest_version(home) == latest and read_quarter(home, "2026-Q4") == q4
        q2, q3 = read_quarter(home, "2026-Q2"), read_quarter(home, "2026-Q3")
        assert q2["reviewed_weeks"] == q3["reviewed_weeks"] == []  # the traffic weeks are 2026-Q4's
        assert q2["outcome"] in ("promoted", "held", "blocked") and q3["score"] is not None
        backfill_runs = instance.get_runs(dg.RunsFilter(tags={"flywheel/trigger": "backfill"}))
        assert sorted(r.tags["dagster/partition"] for r in backfill_runs) == ["2026-04-01", "2026-07-01"]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in backfill_runs)

    assert result.report.exists() and (home.reports() / "demo_scores.png").exists()
