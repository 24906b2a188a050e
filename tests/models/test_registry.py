"""Model registry on SQLite and PostgreSQL: candidate/rejected records, promotion, forced override,
rollback, eval-set freezing, and the `flywheel models` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from flywheel.models import registry
from tests.models.registry_rows import record


def test_lifecycle_promote_retire_rollback(db: str) -> None:
    assert registry.current_champion(db) is None
    record(db, "v1", True, 0.4)
    record(db, "v2", False, 0.2, ["chrf 0.2 vs champion 0.4"])
    assert registry.get_model(db, "v1").status == registry.CANDIDATE
    rejected = registry.get_model(db, "v2")
    assert rejected.status == registry.REJECTED and rejected.gate_reasons == ["chrf 0.2 vs champion 0.4"]

    registry.promote(db, "v1", by="gate", reason="passed")
    champ = registry.current_champion(db)
    assert champ.version == "v1" and champ.promoted_by == "gate" and champ.promoted_at is not None

    # a version that failed the gate is refused without force
    with pytest.raises(registry.RegistryError, match="failed the gate.*--force"):
        registry.promote(db, "v2", by="alice", reason="looks fine to me")
    assert registry.current_champion(db).version == "v1"

    record(db, "v3", True, 0.6)
    registry.promote(db, "v3", by="gate", reason="passed")
    assert registry.get_model(db, "v1").status == registry.RETIRED
    assert registry.current_champion(db).version == "v3"

    retired, back = registry.rollback(db, by="bob", reason="complaints")
    assert (retired.version, retired.status) == ("v3", registry.RETIRED)
    assert (back.version, back.status) == ("v1", registry.CHAMPION)
    assert [m.version for m in registry.list_models(db) if m.status == registry.CHAMPION] == ["v1"]
    # v1 had no champion before it: nothing further to roll back to
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        registry.rollback(db, by="bob")

    log = registry.model_events_log(db)
    assert any(e["action"] == "rollback" and e["version"] == "v1" and e["actor"] == "bob" for e in log)


def test_forced_promotion_is_logged_as_override(db: str) -> None:
    record(db, "v1", True)
    registry.promote(db, "v1", by="gate", reason="passed")
    record(db, "v2", False)
    with pytest.raises(registry.RegistryError, match="needs a reason"):
        registry.promote(db, "v2", by="carol", reason=" ", force=True)
    rec = registry.promote(db, "v2", by="carol", reason="hotfix for outage", force=True)
    assert rec.status == registry.CHAMPION and rec.promoted_by == "carol"
    assert rec.reason == "manual override: hotfix for outage"
    forced = [e for e in registry.model_events_log(db, "v2") if e["action"] == "forced"]
    assert forced and forced[0]["previous_champion"] == "v1" and forced[0]["actor"] == "carol"
    with pytest.raises(registry.RegistryError, match="not in the registry"):
        registry.promote(db, "nope", reason="x")


def test_reevaluating_the_champion_keeps_its_status(db: str) -> None:
    record(db, "v1", True)
    registry.promote(db, "v1", by="gate", reason="passed")
    record(db, "v1", False)
    assert registry.get_model(db, "v1").status == registry.CHAMPION


def test_eval_set_freeze_keeps_the_first_hash(db: str) -> None:
    assert registry.frozen_eval_set(db, 1) is None
    first = registry.freeze_eval_set(db, 1, "aaa", 100, {"clean": 100})
    again = registry.freeze_eval_set(db, 1, "bbb", 120, {"clean": 120})
    assert first["content_hash"] == again["content_hash"] == "aaa"
    assert registry.freeze_eval_set(db, 2, "bbb", 120, {"clean": 120})["content_hash"] == "bbb"


def test_cli_list_promote_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.cli import output

    monkeypatch.setattr(output.console, "width", 250)
    home = tmp_path / "home"
    db = FlywheelHome(home).database_url()
    record(db, "v1", True, 0.4)
    record(db, "v2", True, 0.5)
    record(db, "v3", False, 0.1)
    runner = CliRunner()
    opts = ["--home", str(home)]

    r = runner.invoke(app, ["models", "promote", "v1", "--reason", "first", "--by", "dana", *opts])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["models", "promote", "v2", "--reason", "better", *opts], env={"USER": "erin"})
    assert r.exit_code == 0, r.output
    assert registry.current_champion(db).promoted_by == "erin"

    r = runner.invoke(app, ["models", "promote", "v3", "--reason", "trust me", *opts])
    assert r.exit_code == 2 and "failed the gate" in r.output
    assert registry.current_champion(db).version == "v2"

    r = runner.invoke(app, ["models", "rollback", "--reason", "bad feedback", "--by", "dana", *opts])
    assert r.exit_code == 0, r.output
    assert registry.current_champion(db).version == "v1"
    assert registry.get_model(db, "v2").status == registry.RETIRED
    assert json.loads((home / "models" / "champion.json").read_text())["version"] == "v1"

    r = runner.invoke(app, ["models", "promote", "v3", "--force", "--reason", "demo override", "--by", "dana", *opts])
    assert r.exit_code == 0, r.output
    assert registry.current_champion(db).version == "v3"

    r = runner.invoke(app, ["models", "list", *opts])
    assert r.exit_code == 0
    for text in ("v1", "v2", "v3", "champion", "retired", "manual override: demo override"):
        assert text in r.output
    r = runner.invoke(app, ["models", "history", *opts])
    assert r.exit_code == 0
