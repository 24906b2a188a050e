"""Registry changes made outside a run (`flywheel models promote/rollback`) land on `champion_model` as
runless materializations, so the catalog names the real champion."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from flywheel.ops.runs import load_orchestrator
from jobs.champion_events import CHAMPION_ASSET
from tests.models.registry_rows import record


def _latest(dagster_home: Path) -> dg.AssetMaterialization | None:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        event = instance.get_latest_materialization_event(CHAMPION_ASSET)
        return None if event is None else event.asset_materialization


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    return folder


def test_rollback_and_promote_are_recorded_on_champion_model(tmp_path: Path, dagster_home: Path) -> None:
    home = tmp_path / "home"
    db = FlywheelHome(home).database_url()
    record(db, "v1", True, 0.4)
    record(db, "v2", True, 0.5)
    opts = ["--home", str(home)]
    runner = CliRunner()
    for version in ("v1", "v2"):
        r = runner.invoke(app, ["models", "promote", version, "--reason", f"ship {version}", "--by", "dana", *opts])
        assert r.exit_code == 0, r.output
    promoted = _latest(dagster_home)
    assert promoted is not None and promoted.metadata["champion"].value == "v2"
    assert promoted.metadata["action"].value == "promoted" and promoted.metadata["promoted_by"].value == "dana"

    r = runner.invoke(app, ["models", "rollback", "--reason", "v2 answers in French", "--by", "erin", *opts])
    assert r.exit_code == 0, r.output
    assert "recorded on champion_model: rollback v1" in r.output
    latest = _latest(dagster_home)
    assert latest is not None
    meta = {k: v.value for k, v in latest.metadata.items()}
    assert meta["champion"] == "v1" and meta["action"] == "rollback" and meta["promoted_by"] == "erin"
    assert "v2 answers in French" in meta["reason"]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        event = instance.get_latest_materialization_event(CHAMPION_ASSET)
        assert event is not None and not event.run_id  # runless: no run behind it


def test_without_an_instance_the_change_stands_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "home"
    db = FlywheelHome(home).database_url()
    record(db, "v1", True, 0.4)
    r = CliRunner().invoke(app, ["models", "promote", "v1", "--reason", "first", "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert "not updated" in r.output and "DAGSTER_HOME" in r.output


def test_the_orchestrator_exposes_it(dagster_home: Path) -> None:
    load_orchestrator().record_champion_change("v9", "forced", "ops", "manual override: hotfix")
    latest = _latest(dagster_home)
    assert latest is not None and latest.metadata["champion"].value == "v9"
    assert latest.metadata["action"].value == "forced"
