"""Model registry on SQLite and PostgreSQL: candidate/rejected records, promotion, forced override,
rollback, eval-set freezing, score history + plot, serving export, and the `flywheel models` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from flywheel.models import registry


def _summary(candidate: str, champion: str, cand: float, champ: float) -> dict:
    block = {"candidate": cand, "champion": champ, "diff": cand - champ, "ci_low": cand - champ - 0.05,
             "ci_high": cand - champ + 0.05, "n": 100}
    return {
        "candidate": candidate, "champion": champion, "eval_set_version": 1, "eval_set_hash": "h1",
        "primary_metric": "chrf", "overall": {"chrf": block},
        "slices": {"clean": {"n": 50, "metrics": {"chrf": block}}, "messy": {"n": 50, "metrics": {"chrf": block}}},
    }


def _record(db: str, version: str, passed: bool, score: float = 0.5, reasons: list[str] | None = None) -> None:
    registry.record_candidate(
        db, version, dataset_version=f"ds-{version}", base_model="tiny", adapter_path=f"/models/{version}",
        eval_set_hash="h1", eval_set_version=1, scores={"overall": {"chrf": score}}, gate_passed=passed,
        gate_reasons=reasons or (["passed"] if passed else ["chrf dropped"]),
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("pg_url")


def test_lifecycle_promote_retire_rollback(db: str) -> None:
    assert registry.current_champion(db) is None
    _record(db, "v1", True, 0.4)
    _record(db, "v2", False, 0.2, ["chrf 0.2 vs champion 0.4"])
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

    _record(db, "v3", True, 0.6)
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
    _record(db, "v1", True)
    registry.promote(db, "v1", by="gate", reason="passed")
    _record(db, "v2", False)
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
    _record(db, "v1", True)
    registry.promote(db, "v1", by="gate", reason="passed")
    _record(db, "v1", False)
    assert registry.get_model(db, "v1").status == registry.CHAMPION


def test_eval_set_freeze_keeps_the_first_hash(db: str) -> None:
    assert registry.frozen_eval_set(db, 1) is None
    first = registry.freeze_eval_set(db, 1, "aaa", 100, {"clean": 100})
    again = registry.freeze_eval_set(db, 1, "bbb", 120, {"clean": 120})
    assert first["content_hash"] == again["content_hash"] == "aaa"
    assert registry.freeze_eval_set(db, 2, "bbb", 120, {"clean": 120})["content_hash"] == "bbb"


def test_score_history_and_plot(db: str, tmp_path: Path) -> None:
    _record(db, "v1", True, 0.4)
    registry.record_evaluation(db, _summary("v1", "base:tiny", 0.4, 0.05), gate_passed=True)
    registry.promote(db, "v1", by="gate", reason="passed")
    _record(db, "v2", False, 0.3)
    registry.record_evaluation(db, _summary("v2", "v1", 0.3, 0.4), gate_passed=False)
    rows = registry.score_history(db, 1)
    assert [(r["cycle"], r["candidate"], r["outcome"]) for r in rows] == [(1, "v1", "promoted"), (2, "v2", "rejected")]
    assert rows[1]["slices"]["clean"] == {"candidate": 0.3, "champion": 0.4}
    assert registry.score_history(db, 2) == []
    png = registry.plot_score_history(rows, tmp_path / "plots" / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = registry.plot_score_history([], tmp_path / "empty.png")
    assert empty.stat().st_size > 0
    table = registry.score_history_markdown(rows).splitlines()
    assert table[0].startswith("| cycle | candidate | vs | chrf |") and len(table) == 4
    assert table[3] == "| 2 | v2 | v1 | 0.3000 | 0.4000 | -0.1000 [-0.1500, -0.0500] | rejected |"


def test_serving_export(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    _record(db, "v1", True, 0.7)
    rec = registry.promote(db, "v1", by="gate", reason="passed")
    info = registry.write_serving_export(home, rec, lora_name="support-bot")
    saved = json.loads(home.model("champion.json").read_text())
    assert saved["version"] == "v1" and saved["path"] == "/models/v1"
    expected = f"vllm serve {home.model('base-tiny')} --enable-lora --lora-modules support-bot=/models/v1"
    assert info["vllm_command"] == expected
    assert expected in (home.reports() / "serving.md").read_text()
    # a later export (manual promotion, rollback) keeps the name clients use
    again = registry.write_serving_export(home, rec)
    assert again["lora_name"] == "support-bot"


def test_cli_list_promote_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel import cli

    monkeypatch.setattr(cli.console, "width", 250)
    home = tmp_path / "home"
    db = FlywheelHome(home).database_url()
    _record(db, "v1", True, 0.4)
    _record(db, "v2", True, 0.5)
    _record(db, "v3", False, 0.1)
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


def test_serving_export_checks_the_adapter_config_for_vllm(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    adapter = tmp_path / "adapters" / "v1"
    adapter.mkdir(parents=True)
    config = {"base_model_name_or_path": "Qwen/Qwen2.5-0.5B", "r": 64, "lora_alpha": 128, "bias": "none",
              "target_modules": ["q_proj", "v_proj"], "modules_to_save": None, "use_dora": False}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    registry.record_candidate(
        db, "v1", dataset_version="ds1", base_model="Qwen/Qwen2.5-0.5B", adapter_path=str(adapter),
        eval_set_hash="h1", eval_set_version=1, scores={}, gate_passed=True, gate_reasons=["passed"])
    rec = registry.promote(db, "v1", by="gate", reason="passed")
    info = registry.write_serving_export(home, rec, lora_name="bot")
    # rank 64 is above vLLM's default --max-lora-rank 16: the command says so
    assert info["vllm_command"] == (
        f"vllm serve Qwen/Qwen2.5-0.5B --enable-lora --max-lora-rank 64 --lora-modules bot={adapter}")
    assert info["warnings"] == []
    assert [registry.vllm_max_lora_rank(r) for r in (8, 16, 17, 48, 320)] == [None, None, 32, 64, 320]

    # modules_to_save (embeddings / lm_head trained in full) is refused by most vLLM versions: warned
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "r": 16, "modules_to_save": ["lm_head"]}))
    info = registry.write_serving_export(home, rec)
    assert "--max-lora-rank" not in info["vllm_command"]
    assert len(info["warnings"]) == 1 and "modules_to_save ['lm_head']" in info["warnings"][0]
    assert "**Warning:** modules_to_save" in (home.reports() / "serving.md").read_text()
    assert registry.vllm_adapter_warnings({**config, "use_dora": True, "bias": "all", "r": None})[:2] == [
        "adapter_config.json has no r", "use_dora is set: vLLM does not serve DoRA adapters"]
