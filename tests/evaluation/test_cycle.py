"""The evaluation cycle through Dagster end to end: the eval set is frozen until a new version, a better
candidate is promoted, a worse one is blocked and recorded as rejected, a leaking one is refused, and a
candidate evaluated on an edited eval set is blocked whatever was selected. Held and blocked runs succeed."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import yaml

from assets.evaluation import (
    candidate_evaluation,
    champion_model,
    eval_set_frozen,
    eval_set_has_slices,
    eval_set_max_items,
    eval_set_min_items,
    eval_set_rows_valid,
    fixed_eval_set,
    gate_recheck,
)
from assets.resources import FlywheelResource
from flywheel.core.quarters import update_quarter
from flywheel.core.storage import FlywheelHome
from flywheel.models import history, registry
from flywheel.models.artifact import read_candidate
from tests.evaluation.eval_files import (
    MAX_NEW_TOKENS,
    SLICE_ANSWERS,
    eval_rows,
    write_dataset,
    write_eval_file,
)
from tests.models.artifacts import install_model

QUARTER = "2026-10-01"  # the evaluation assets' retrain quarter (2026-Q4)
EVAL_ASSETS = [fixed_eval_set, candidate_evaluation, champion_model, eval_set_min_items, eval_set_rows_valid,
               eval_set_has_slices, eval_set_frozen, gate_recheck]


def _project(tmp_path: Path, **evaluation: object) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    cfg = {"name": "e2e", "evaluation": {"eval_set": "eval.jsonl", "max_new_tokens": MAX_NEW_TOKENS, "batch_size": 50,
                                         "bootstrap_samples": 200, **evaluation}}
    (project / "flywheel.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return project


def _run(project: Path, home: FlywheelHome, selection: list | None = None) -> dg.ExecuteInProcessResult:
    """Materialize `selection`; with the quarterly evaluation assets, for QUARTER, whose model is the installed
    candidate (what training_dataset and lora_adapter record for the quarter)."""
    resource = FlywheelResource(project_dir=str(project), home_dir=str(home.root))
    selection = selection or EVAL_ASSETS
    if candidate_evaluation not in selection and champion_model not in selection:
        return dg.materialize(selection, resources={"flywheel": resource}, raise_on_error=False)
    candidate = read_candidate(home)
    update_quarter(home, QUARTER, dataset_version=candidate.dataset_version or "ds", model_version=candidate.version)
    return dg.materialize(selection, resources={"flywheel": resource}, raise_on_error=False, partition_key=QUARTER)


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_eval_set_is_frozen_until_a_new_version(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    project = _project(tmp_path)
    write_eval_file(project / "eval.jsonl", eval_rows(100))
    only_set = [fixed_eval_set, eval_set_min_items, eval_set_max_items, eval_set_rows_valid, eval_set_has_slices,
                eval_set_frozen]
    r = _run(project, home, only_set)
    assert all(e.passed for e in r.get_asset_check_evaluations())
    info = json.loads((home.warehouse("fixed_eval_set") / "current.json").read_text())
    assert info["items"] == 100 and info["slices"] == {s: 20 for s in sorted(SLICE_ANSWERS)}
    assert pq.read_table(home.warehouse("fixed_eval_set", "current")).num_rows == 100

    edited = eval_rows(100)
    edited[0]["messages"][1]["content"] = "changed"
    write_eval_file(project / "eval.jsonl", edited)
    r = _run(project, home, only_set)
    frozen = _check(r, "eval_set_frozen")
    assert not frozen.passed and "raise evaluation.eval_set_version" in frozen.description

    _project(tmp_path, eval_set_version=2)
    r = _run(project, home, only_set)
    assert _check(r, "eval_set_frozen").passed

    write_eval_file(project / "eval.jsonl", [{k: v for k, v in row.items() if k != "slice"} for row in eval_rows(50)])
    _project(tmp_path, eval_set_version=3)
    r = _run(project, home, only_set)
    assert not _check(r, "eval_set_min_items").passed
    assert not _check(r, "eval_set_frozen").passed
    slices = _check(r, "eval_set_has_slices")
    assert not slices.passed and slices.severity == dg.AssetCheckSeverity.WARN
    assert _check(r, "eval_set_max_items").passed

    write_eval_file(project / "eval.jsonl", eval_rows(205))
    _project(tmp_path, eval_set_version=4)
    r = _run(project, home, only_set)
    too_big = _check(r, "eval_set_max_items")
    assert not too_big.passed and too_big.severity == dg.AssetCheckSeverity.WARN and "205 items" in too_big.description
    assert _check(r, "eval_set_frozen").passed


def test_better_candidate_promoted_worse_blocked(adapters: dict[str, Path], tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    project = _project(tmp_path)
    write_eval_file(project / "eval.jsonl", eval_rows(100))
    write_dataset(home, "ds1", ["unrelated question", "another one"])
    db = home.database_url()

    # cycle 1: the trained adapter beats the base model -> promoted
    install_model(home, "v-better", adapters["better"])
    r = _run(project, home)
    assert r.success and _check(r, "gate_verdict").passed, _check(r, "gate_verdict").description
    assert _check(r, "gate_verdict").description.startswith("promoted: improvement")
    assert _check(r, "gate_recheck").passed
    assert r.get_asset_materialization_events()[-1].asset_key == dg.AssetKey("champion_model")
    champ_meta = r.get_asset_materialization_events()[-1].materialization.metadata
    assert champ_meta["serving_warnings"].value == "none"  # a real trained adapter is servable by vLLM as is
    assert "| 1 | v-better | base:tiny |" in champ_meta["score_history_table"].value
    champ = registry.current_champion(db)
    assert champ.version == "v-better" and champ.promoted_by.startswith("dagster run")
    serving = json.loads(home.model("champion.json").read_text())
    assert serving["version"] == "v-better"
    assert "--enable-lora --lora-modules e2e=" in (home.reports() / "serving.md").read_text()
    answers = pq.read_table(home.reports() / "evaluations" / "v-better" / "answers.parquet")
    assert answers.num_rows == 100 and {"candidate_chrf", "champion_chrf", "reference"} <= set(answers.column_names)

    # cycle 2: a random LoRA is worse -> blocked (an outcome: the run succeeds), recorded as rejected,
    # champion_model skipped, champion untouched
    install_model(home, "v-worse", adapters["worse"])
    r = _run(project, home)
    check = _check(r, "gate_verdict")
    assert r.success and not check.passed and check.description.startswith("blocked: regression")
    assert check.severity == dg.AssetCheckSeverity.WARN and "chrf" in check.description
    materialized = {e.asset_key for e in r.get_asset_materialization_events()}
    assert dg.AssetKey("champion_model") not in materialized
    assert registry.current_champion(db).version == "v-better"
    rejected = registry.get_model(db, "v-worse")
    assert rejected.status == registry.REJECTED and rejected.gate_reasons
    summary = json.loads((home.reports() / "evaluations" / "v-worse" / "summary.json").read_text())
    assert summary["champion"] == "v-better" and summary["overall"]["chrf"]["diff"] < 0
    meta = next(e for e in r.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("candidate_evaluation")).materialization.metadata
    assert "| slice | input | reference | candidate | champion |" in meta["worst_regressions"].value
    assert meta["outcome"].value == "blocked" and "**overall**" in meta["scores"].value
    assert "| 2 | v-worse | v-better |" in meta["score_history_table"].value

    # cycle 3: the same worse model trained on data holding an eval item is refused for the leak too;
    # the champion's answers come from the cache
    write_dataset(home, "ds-leak", ["unrelated question", "Clean Q0"])
    install_model(home, "v-leak", adapters["worse"], dataset_version="ds-leak")
    r = _run(project, home)
    check = _check(r, "gate_verdict")
    assert r.success and not check.passed and "appear in the candidate's training data" in check.description
    summary = json.loads((home.reports() / "evaluations" / "v-leak" / "summary.json").read_text())
    assert summary["champion_answers_cached"] is True

    rows = history.score_history(db, 1)
    assert [(h["candidate"], h["outcome"]) for h in rows] == [
        ("v-better", "promoted"), ("v-worse", "blocked"), ("v-leak", "blocked")]
    assert (home.reports() / "evaluations" / "v-leak" / "score_history.png").exists()


def test_a_changed_eval_set_cannot_sneak_past_the_freeze(adapters: dict[str, Path], tmp_path: Path) -> None:
    """Edit eval.jsonl, materialize only fixed_eval_set (its check fails but the asset is written), then
    evaluate and promote: the gate compares the evaluated hash with the frozen one and blocks."""
    home = FlywheelHome(tmp_path / "home")
    project = _project(tmp_path)
    write_eval_file(project / "eval.jsonl", eval_rows(100))
    write_dataset(home, "ds1", ["unrelated question", "another one"])
    install_model(home, "v-first", adapters["worse"])
    _run(project, home)  # freezes eval set version 1 (the worse model is blocked: no champion yet)
    frozen = registry.frozen_eval_set(home.database_url(), 1)["content_hash"]

    edited = eval_rows(100)
    for row in edited[:30]:
        row["messages"][1]["content"] = "changed"
    write_eval_file(project / "eval.jsonl", edited)
    r = _run(project, home, [fixed_eval_set, eval_set_frozen])
    assert not _check(r, "eval_set_frozen").passed
    install_model(home, "v-better", adapters["better"])
    r = _run(project, home, [candidate_evaluation, champion_model])
    check = _check(r, "gate_verdict")
    assert r.success and not check.passed and f"not the frozen {frozen}" in check.description
    assert registry.current_champion(home.database_url()) is None
    assert dg.AssetKey("champion_model") not in {e.asset_key for e in r.get_asset_materialization_events()}
    assert [h["candidate"] for h in history.score_history(home.database_url(), 1)] == ["v-first"]
