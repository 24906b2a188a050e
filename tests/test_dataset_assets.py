"""Dagster: the example sources, the training dataset and its checks, materialized in temp dirs."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from assets import dataset, training
from assets.resources import FlywheelResource
from flywheel.curation import read_manifest
from flywheel.examples import examples_table, make_example
from flywheel.project import template_text
from flywheel.storage import FlywheelHome, write_parquet

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
ALPACA = DATASETS / "alpaca_llamafactory_demo.json"
SOURCE_AND_DATASET = [dataset.seed_examples, dataset.synthetic_examples, dataset.distilled_examples, dataset.training_dataset]
CHECKS = [dataset.format_consistent, dataset.size_floor, dataset.real_synthetic_ratio, dataset.no_eval_contamination,
          dataset.rubric_edited, dataset.single_generator_share, dataset.diversity_drop, dataset.distribution_gap,
          dataset.conflicts_pending_review, dataset.size_target]


def _project(project_dir: Path, tmp_path: Path, **curation: object) -> Path:
    synthetic = tmp_path / "synthetic.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Name a fruit that is {c}."},
                          {"role": "assistant", "content": f"A {c} fruit: the {f}."}], "generator": "gen-a"}
            for c, f in [("red", "strawberry"), ("yellow", "banana"), ("green", "kiwi"), ("orange", "orange")]]
    rows.append({"messages": [{"role": "user", "content": "Name a purple fruit."}, {"role": "assistant", "content": "A plum."}]})
    synthetic.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    distilled = tmp_path / "distilled.jsonl"
    distilled.write_text(json.dumps({"instruction": "What is 12 times 12?", "input": "", "output": "144.", "teacher": "teacher-xl"}) + "\n")
    cfg = yaml.safe_load((project_dir / "flywheel.yaml").read_text())
    cfg["sources"] = {"seed": [str(ALPACA)], "synthetic": [str(synthetic)], "distilled": [str(distilled)]}
    cfg["curation"].update({"review_sample_size": 10, **curation})
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return project_dir


def _eval_set(home: FlywheelHome, n_leaked: int = 3) -> None:
    alpaca = json.loads(ALPACA.read_text())
    rows = []
    for r in alpaca[:n_leaked]:  # leaked: the same items are in the seed file
        user = r["instruction"] + ("\n\n" + r["input"] if r["input"] else "")
        rows.append(make_example([{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}], "human", slice="clean"))
    rows.append(make_example([{"role": "user", "content": "wat is the capitl of peru"}, {"role": "assistant", "content": "Lima."}],
                             "human", slice="messy"))
    write_parquet(examples_table(rows), home.warehouse("fixed_eval_set", "current"))


def _production_traffic(home: FlywheelHome) -> list[str]:
    """Two days of production inputs: short, lower-case, typo-laden, like real users write."""
    texts = [f"hw do i {verb} my {thing} pls" for verb in ("reset", "chnage", "cancel", "track", "updte")
             for thing in ("pasword", "order", "acct", "plan", "invoice", "email", "card", "adress")]
    for day, part in (("2025-03-03", texts[:20]), ("2025-03-04", texts[20:])):
        write_parquet(pa.table({"input_text": part, "model_version": ["model-v1"] * len(part)}), home.warehouse("interactions", day))
    return texts


def _resource(project_dir: Path, home: FlywheelHome) -> dict[str, FlywheelResource]:
    return {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_sources_and_training_dataset(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path)
    _eval_set(home)
    production = _production_traffic(home)
    result = dg.materialize(SOURCE_AND_DATASET + CHECKS, resources=_resource(project_dir, home))
    assert result.success
    checks = _checks(result)
    for name in ("format_consistent", "size_floor", "real_synthetic_ratio", "no_eval_contamination", "rubric_edited"):
        assert checks[name], name
    # sources: read = accepted + quarantined; the synthetic row without a generator is quarantined
    syn = pq.read_table(home.warehouse("synthetic_examples", "all")).to_pylist()
    quarantined = pq.read_table(home.quarantine("synthetic_examples", "all")).to_pylist()
    assert len(syn) == 4 and {r["generator"] for r in syn} == {"gen-a"}
    assert [q["reason"] for q in quarantined] == ["missing_generator"] and quarantined[0]["line"] == 5
    (dist,) = pq.read_table(home.warehouse("distilled_examples", "all")).to_pylist()
    assert dist["source"] == "distilled" and dist["generator"] == "teacher-xl"
    # the dataset version
    mat = result.asset_materializations_for_node("training_dataset")[0]
    version = mat.metadata["version"].value
    assert (home.path("datasets", "LATEST")).read_text().strip() == version
    manifest = read_manifest(home, version)
    drops = pq.read_table(home.dataset(version) / "drops.parquet").to_pylist()
    reasons = {d["reason"] for d in drops}
    assert "exact_duplicate" in reasons and reasons & {"eval_ngram_overlap", "eval_near_duplicate_input"}
    assert sum(d["reason"] == "exact_duplicate" for d in drops) == 14
    assert manifest["counts"]["train"] + manifest["counts"]["dropped"] == manifest["counts"]["input"] == 999 + 4 + 1
    assert len((home.dataset(version) / "review_sample.jsonl").read_text().splitlines()) == 10
    assert mat.metadata["review_batch"].value == f"dataset-{version}"
    card = (home.dataset(version) / "card.md").read_text()
    assert "eval_near_duplicate_input" in card and manifest["content_hash"] in card
    # the production gap against the interactions warehouse, with the length histogram in the card and metadata
    gap = manifest["production_gap"]
    assert gap["available"] and gap["production_inputs"] == len(production)
    assert gap["shares"]["lower_case"]["production"] == 1.0 > gap["shares"]["lower_case"]["training"]
    assert "short" not in gap["underrepresented_kinds"] and "lower_case" in gap["underrepresented_kinds"]
    png = home.dataset(version) / "input_lengths.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Input length, training vs production](input_lengths.png)" in card and "## Production distribution gap" in card
    assert mat.metadata["input_lengths"].value.startswith("![input length, training vs production](data:image/png;base64,")
    assert "lower_case" in mat.metadata["warnings"].value  # the gap warning, shown beside the counts
    assert "under-covered kinds" in mat.metadata["production_gap"].value and "source:synthetic" in mat.metadata["diversity"].value
    # same inputs, same version
    again = dg.materialize([dataset.training_dataset], resources=_resource(project_dir, home))
    assert again.asset_materializations_for_node("training_dataset")[0].metadata["version"].value == version


def test_missing_eval_set_fails_the_blocking_check(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path)
    result = dg.materialize(SOURCE_AND_DATASET + CHECKS, resources=_resource(project_dir, home), raise_on_error=False)
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "no_eval_contamination")
    assert not evaluation.passed and "fixed_eval_set" in (evaluation.description or "")
    assert not home.path("datasets", "LATEST").exists()


def test_blocking_check_stops_training_downstream(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path, min_examples=5000, target_examples=5000)
    _eval_set(home)

    @dg.asset(deps=[dataset.training_dataset])
    def model_after_dataset() -> None:
        raise AssertionError("training must not run on a dataset that broke a blocking rule")

    result = dg.materialize(SOURCE_AND_DATASET + CHECKS + [model_after_dataset], resources=_resource(project_dir, home),
                            raise_on_error=False)
    assert not _checks(result)["size_floor"]
    assert not result.asset_materializations_for_node("model_after_dataset")
    assert "model_after_dataset" not in {e.step_key for e in result.get_step_success_events()}


def test_blocking_check_skips_the_real_lora_adapter(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    """The real training asset in the same run: a dataset below the floor never reaches it."""
    _project(project_dir, tmp_path, min_examples=5000, target_examples=5000)
    _eval_set(home)
    result = dg.materialize(SOURCE_AND_DATASET + CHECKS + [training.lora_adapter], resources=_resource(project_dir, home),
                            raise_on_error=False)
    assert result.asset_materializations_for_node("training_dataset")
    assert not _checks(result)["size_floor"]
    assert not result.asset_materializations_for_node("lora_adapter")
    assert "lora_adapter" in {n.name for n in result.job_def.nodes}  # in this run
    assert not [e for e in result.all_events if e.step_key == "lora_adapter"]  # never started: no training subprocess
    assert not home.path("datasets", "LATEST").exists() and not home.path("models").exists()


def test_unedited_rubric_refuses_to_build(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path)
    (project_dir / "rubric.md").write_text(template_text("rubric.md"), encoding="utf-8")
    with pytest.raises(dg.Failure, match="unedited template"):
        dg.materialize([dataset.training_dataset], resources=_resource(project_dir, home))
