"""The generation assets materialized in a temp home against the real OpenAI-compatible test server; curation's
source assets pick the runs up and register their admission samples."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import yaml

from assets import curation, generation
from assets.resources import FlywheelResource
from flywheel.core.storage import FlywheelHome
from flywheel.labeling.store import ReviewStore
from tests.generation.conftest import MESSY, WEEK, endpoint, write_interactions, write_seed_file
from tests.generation.openai_server import serve_openai


def _project(project_dir: Path, url: str) -> None:
    data = yaml.safe_load((project_dir / "flywheel.yaml").read_text(encoding="utf-8"))
    data["sources"]["seed"] = [str(write_seed_file(project_dir))]
    data["generation"] = {
        "max_examples": 8, "examples_per_request": 2,
        "generators": [endpoint(url, "gen-alpha", "llama"), endpoint(url, "gen-beta", "qwen"),
                       endpoint(url, "gen-broken", "mistral")],
        "teacher": endpoint(url, "teacher-big", "llama"),
        "reference_model": endpoint(url, "ref-lm", "llama"),
    }
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def test_generation_assets_feed_curation(project_dir: Path, home: FlywheelHome) -> None:
    resources = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))}
    write_interactions(home, "2026-01-06", MESSY)
    with serve_openai() as (url, seen):
        _project(project_dir, url)
        weekly = dg.materialize([generation.generated_synthetic, generation.generated_distilled], resources=resources,
                                partition_key=WEEK)
        assert weekly.success
        synth = weekly.asset_materializations_for_node("generated_synthetic")[0].metadata
        assert synth["target"].value == 8 and synth["accepted"].value == 6  # gen-broken's share is missing
        assert synth["failed_requests"].value == 3 and "gen-broken: 0 of 2 written" in synth["notes"].value
        assert "| gen-broken | mistral |" in synth["per_model"].value and synth["tokens"].value > 0
        distilled = weekly.asset_materializations_for_node("generated_distilled")[0].metadata
        assert distilled["accepted"].value == 10 == distilled["inputs_this_week"].value

        rest = dg.materialize([curation.synthetic_examples, curation.distilled_examples, generation.collapse_watch,
                               generation.no_collapse_signs], resources=resources)
        assert rest.success
    src = rest.asset_materializations_for_node("synthetic_examples")[0].metadata
    assert src["accepted"].value == 6 and "admission-2026-01-05-" in src["pending_review"].value
    assert rest.asset_materializations_for_node("distilled_examples")[0].metadata["accepted"].value == 10
    store = ReviewStore(home.database_url())
    assert len([b for b in src["pending_review"].value.split(", ") if store.has_batch(b)]) == 1
    watch = rest.asset_materializations_for_node("collapse_watch")[0].metadata
    assert watch["generations"].value == 3 and watch["reference_model"].value == "ref-lm"
    assert "synthetic:gen-alpha" in watch["measures"].value
    check = next(e for e in rest.get_asset_check_evaluations() if e.check_name == "no_collapse_signs")
    assert check.passed  # one generation per series: nothing narrowed yet
    assert any(s["path"] == "completions" for s in seen)
    assert json.loads(home.generated("distilled", WEEK).read_text().splitlines()[0])["teacher"] == "teacher-big"


def test_teacher_scorecard_asset_and_check(project_dir: Path, home: FlywheelHome) -> None:
    from flywheel.config import load_project
    from flywheel.core.storage import write_parquet
    from flywheel.evaluation.cycle import build_fixed_eval_set
    from flywheel.evaluation.eval_set import eval_items, eval_set_table
    from tests.evaluation.eval_files import eval_rows, write_eval_file

    resources = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))}
    rows = eval_rows(100)
    write_eval_file(project_dir / "eval.jsonl", rows)
    with serve_openai(answers={r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}) as (url, _):
        _project(project_dir, url)
        info = build_fixed_eval_set(load_project(project_dir), home, home.database_url())
        items = eval_items(eval_set_table(home))  # the champion (base model) as an earlier cycle cached its answers
        write_parquet(pa.table({"example_id": [it.example_id for it in items], "answer": ["no"] * len(items)}),
                      home.reports() / "champion_answers" / f"base_tiny__{info['content_hash']}__t128.parquet")
        result = dg.materialize([generation.teacher_scorecard, generation.teacher_beats_champion], resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("teacher_scorecard")[0].metadata
    assert meta["verdict"].value == "better" and "| chrf | 1.0 |" in meta["scores"].value
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "teacher_beats_champion")
    assert check.passed and "teacher-big is better than base:tiny" in check.description
