"""Dagster: the example sources, the training dataset and its checks, materialized in temp dirs."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from assets import curation, training
from assets.resources import FlywheelResource
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.curation.versions import read_manifest
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore
from flywheel.project import template_text
from tests.shared_data import DATASETS

ALPACA = DATASETS / "alpaca_llamafactory_demo.json"
SOURCE_AND_DATASET = [curation.seed_examples, curation.synthetic_examples, curation.distilled_examples, curation.training_dataset]
CHECKS = [curation.format_consistent, curation.size_floor, curation.real_synthetic_ratio, curation.no_eval_contamination,
          curation.rubric_edited, curation.sources_admitted, curation.single_generator_share, curation.diversity_drop,
          curation.distribution_gap, curation.conflicts_pending_review, curation.size_target]
QUARTER = "2026-10-01"  # a retrain quarter (2026-Q4): the dataset's partition
SOURCES = [curation.seed_examples, curation.synthetic_examples, curation.distilled_examples]


def _project(project_dir: Path, tmp_path: Path, extra_synthetic: list[dict] | None = None, **curation: object) -> Path:
    synthetic = tmp_path / "synthetic.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Name a fruit that is {c}."},
                          {"role": "assistant", "content": f"A {c} fruit: the {f}."}], "generator": "gen-a"}
            for c, f in [("red", "strawberry"), ("yellow", "banana"), ("green", "kiwi"), ("orange", "orange")]]
    rows += extra_synthetic or []
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


def _review_admission(home: FlywheelHome, verdicts: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Decide every item of every open admission batch: `verdicts` by file name prefix, else pass."""
    store = ReviewStore(home.database_url())
    decided = {}
    for batch in store.batch_ids(kind="admission"):
        if store.progress(batch).state != "open":
            continue
        verdict = next((v for prefix, v in (verdicts or {}).items() if batch.startswith(f"admission-{prefix}")), "pass")
        for item_id in store.item_ids(batch):
            record_decision(store, batch, item_id, "ana", verdict, reason="wrong" if verdict == "reject" else None)
        decided[batch] = store.item_ids(batch)
    return decided


def test_sources_and_training_dataset(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path)
    _eval_set(home)
    production = _production_traffic(home)
    result = dg.materialize(SOURCE_AND_DATASET + CHECKS, resources=_resource(project_dir, home), partition_key=QUARTER)
    assert result.success
    checks = _checks(result)
    for name in ("format_consistent", "size_floor", "real_synthetic_ratio", "no_eval_contamination", "rubric_edited",
                 "sources_admitted"):
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
    assert "exact_duplicate" in reasons and reasons & {"eval_ngram_overlap", "eval_near_duplicate_input", "eval_near_copy"}
    assert sum(d["reason"] == "exact_duplicate" for d in drops) == 14
    assert manifest["counts"]["train"] + manifest["counts"]["dropped"] == manifest["counts"]["input"] == 999 + 4 + 1
    assert len((home.dataset(version) / "review_sample.jsonl").read_text().splitlines()) == 10
    assert mat.metadata["review_batch"].value == f"dataset-{version}"
    card = (home.dataset(version) / "card.md").read_text()
    assert "eval_near" in card  # eval_near_duplicate_input / eval_near_copy drops
    assert manifest["content_hash"] in card
    # the synthetic and distilled files wait for their admission sample: held out, counted, named
    assert manifest["counts"]["drops_by_reason"]["admission_pending"] == 5 and "synthetic" not in manifest["counts"]["by_source"]
    assert mat.metadata["held_out_files"].value == "synthetic.jsonl, distilled.jsonl"
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
    assert "under-covered kinds" in mat.metadata["production_gap"].value
    # same inputs, same version
    again = dg.materialize([curation.training_dataset], resources=_resource(project_dir, home), partition_key=QUARTER)
    assert again.asset_materializations_for_node("training_dataset")[0].metadata["version"].value == version
    # once every sample passes, the files train
    _review_admission(home)
    admitted = dg.materialize([curation.training_dataset], resources=_resource(project_dir, home), partition_key=QUARTER)
    meta = admitted.asset_materializations_for_node("training_dataset")[0].metadata
    by_source = read_manifest(home, meta["version"].value)["counts"]["by_source"]
    assert meta["held_out_files"].value == "none" and by_source["synthetic"] == 4 and by_source["distilled"] == 1
    assert "source:synthetic" in meta["diversity"].value


def test_missing_eval_set_fails_the_blocking_check(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path)
    result = dg.materialize(SOURCE_AND_DATASET + CHECKS, resources=_resource(project_dir, home), partition_key=QUARTER, raise_on_error=False)
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "no_eval_contamination")
    assert not evaluation.passed and "fixed_eval_set" in (evaluation.description or "")
    assert not home.path("datasets", "LATEST").exists()


def test_blocking_check_stops_training_downstream(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path, min_examples=5000, target_examples=5000)
    _eval_set(home)

    @dg.asset(deps=[curation.training_dataset])
    def model_after_dataset() -> None:
        raise AssertionError("training must not run on a dataset that broke a blocking rule")

    result = dg.materialize(SOURCE_AND_DATASET + CHECKS + [model_after_dataset], resources=_resource(project_dir, home), partition_key=QUARTER,
                            raise_on_error=False)
    assert not _checks(result)["size_floor"]
    assert not result.asset_materializations_for_node("model_after_dataset")
    assert "model_after_dataset" not in {e.step_key for e in result.get_step_success_events()}


def test_blocking_check_skips_the_real_lora_adapter(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    """The real training asset in the same run: a dataset below the floor never reaches it."""
    _project(project_dir, tmp_path, min_examples=5000, target_examples=5000)
    _eval_set(home)
    result = dg.materialize(SOURCE_AND_DATASET + CHECKS + [training.lora_adapter], resources=_resource(project_dir, home), partition_key=QUARTER,
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
        dg.materialize([curation.training_dataset], resources=_resource(project_dir, home), partition_key=QUARTER)


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_conflicts_become_a_review_batch(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    """Synthetic answers contradicting seed rows: dropped, sent for review as `conflicts-<version>`; the
    warning stays until every item is decided; rebuilding the same version keeps the batch and decisions."""
    alpaca = json.loads(ALPACA.read_text())
    seeds = [alpaca[11], alpaca[13]]  # "Explain the concept of e-commerce." / "Generate a list of five ... books"
    contradicting = [{"messages": [{"role": "user", "content": r["instruction"]},
                                   {"role": "assistant", "content": f"I would rather not answer that ({i})."}],
                      "generator": "gen-b"} for i, r in enumerate(seeds)]
    _project(project_dir, tmp_path, extra_synthetic=contradicting)
    _eval_set(home)
    resources = _resource(project_dir, home)
    dg.materialize(SOURCES, resources=resources)  # the source files' admission samples, all passed
    _review_admission(home)
    result = dg.materialize(SOURCE_AND_DATASET + CHECKS, resources=resources, partition_key=QUARTER)
    mat = result.asset_materializations_for_node("training_dataset")[0]
    version = mat.metadata["version"].value
    batch_id = f"conflicts-{version}"
    assert mat.metadata["conflict_batch"].value == batch_id
    conflicts = pq.read_table(home.dataset(version) / "conflicts.parquet").to_pylist()
    assert len(conflicts) == read_manifest(home, version)["counts"]["conflicts"] >= 2
    store = ReviewStore(FlywheelHome(home.root).database_url())
    info = store.batch(batch_id)
    assert info.kind == "conflict" and info.source == f"datasets/{version}/conflicts.parquet"
    items = {it["item_id"]: it for it in store.items(batch_id)}
    assert set(items) == {c["example_id"] for c in conflicts}
    ours = [it for it in items.values() if it["source"] == "synthetic"]
    assert sorted(it["output"] for it in ours) == ["I would rather not answer that (0).", "I would rather not answer that (1)."]
    for it in ours:  # the dropped example's prompt and answer; the kept (seed) answer beside it
        seed = seeds[int(it["output"][-3])]
        lineage = json.loads(it["lineage"])
        assert it["messages"][-1] == {"role": "user", "content": seed["instruction"]}
        assert lineage["kept_answer"] == seed["output"] and lineage["kept_source"] == "human"
        assert seed["output"] in it["evidence"]
    n = len(items)
    instance = dg.DagsterInstance.ephemeral()
    first = _check(result, "conflicts_pending_review")
    assert not first.passed and first.severity == dg.AssetCheckSeverity.WARN
    assert first.description == f"{n} of {n} conflicts undecided (review batch {batch_id}: `flywheel review --batch {batch_id}`)"
    assert _checks(result)["no_eval_contamination"]  # a warning, not a blocker

    # one decision, then a rebuild of the same version: the batch and the decision stay
    ids = list(items)
    record_decision(store, batch_id, ids[0], "ana", "reject", reason="contradicts the seed answer")
    again = dg.materialize([curation.training_dataset, curation.conflicts_pending_review], resources=resources,
                           instance=instance, partition_key=QUARTER)
    mat2 = again.asset_materializations_for_node("training_dataset")[0]
    assert mat2.metadata["version"].value == version and mat2.metadata["conflict_batch"].value == "(already registered)"
    assert [d.item_id for d in store.decisions(batch_id)] == [ids[0]] and store.item_ids(batch_id) == ids
    second = _check(again, "conflicts_pending_review")
    assert not second.passed and second.description.startswith(f"{n - 1} of {n} conflicts undecided")

    # every item decided: the check passes
    fixes, passes = [], []
    for i, item_id in enumerate(ids[1:]):
        if i % 2:
            record_decision(store, batch_id, item_id, "ana", "pass")
            passes.append(item_id)
        else:
            record_decision(store, batch_id, item_id, "ana", "fix", text=f"A better answer ({i}).")
            fixes.append(item_id)
    assert len(store.decisions(batch_id)) == n
    final = dg.materialize([curation.conflicts_pending_review], resources=resources,
                           selection=dg.AssetSelection.checks(curation.conflicts_pending_review), instance=instance)
    assert _check(final, "conflicts_pending_review").passed and batch_id in (_check(final, "conflicts_pending_review").description or "")

    # the next version applies the verdicts: the rejected answer stays out, a passed one trains beside the answer
    # kept, a fixed one trains instead of both
    done = dg.materialize([curation.training_dataset, curation.conflicts_pending_review], resources=resources, partition_key=QUARTER)
    v2 = done.asset_materializations_for_node("training_dataset")[0].metadata["version"].value
    assert v2 != version
    kept_of = {c["example_id"]: c["kept_example_id"] for c in conflicts}
    v1_ids = set(pq.read_table(home.dataset(version) / "train.parquet").column("example_id").to_pylist())
    train = pq.read_table(home.dataset(v2) / "train.parquet").to_pylist()
    fixed_ids = {r["example_id"] for r in train if r["messages"][-1]["content"].startswith("A better answer")}
    assert len(fixed_ids) == len(fixes)
    assert {r["example_id"] for r in train} == (v1_ids - {kept_of[f] for f in fixes}) | set(passes) | fixed_ids
    manifest = read_manifest(home, v2)
    assert manifest["conflict_review"]["batches"][0] == {"batch": batch_id, "items": n, "decided": n, "pass": len(passes),
                                                         "fix": len(fixes), "reject": 1, "reject_both": 0}
    assert manifest["counts"]["conflicts"] == 0 and _check(done, "conflicts_pending_review").passed


def test_no_conflicts_no_batch(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    """The plain sources (no contradicting answers): no conflicts batch, the check passes."""
    _project(project_dir, tmp_path, review_sample_size=0)
    _eval_set(home)
    result = dg.materialize(SOURCE_AND_DATASET + [curation.conflicts_pending_review], resources=_resource(project_dir, home), partition_key=QUARTER)
    mat = result.asset_materializations_for_node("training_dataset")[0]
    version = mat.metadata["version"].value
    assert read_manifest(home, version)["counts"]["conflicts"] == 0
    assert mat.metadata["conflict_batch"].value == "(no conflicts)"
    assert not ReviewStore(home.database_url()).has_batch(f"conflicts-{version}")
    check = _check(result, "conflicts_pending_review")
    assert check.passed and check.description == "no conflicting examples"


def test_answer_format_breaks_are_dropped_and_reported_by_the_blocking_check(project_dir: Path, tmp_path: Path,
                                                                             home: FlywheelHome) -> None:
    """`curation.answer_regex` must fully match every answer: a chatty row is dropped (`answer_format`), never
    trains, and the blocking `format_consistent` check names the format and counts the drop."""
    chatty = [{"messages": [{"role": "user", "content": "Name a fruit that is blue."},
                            {"role": "assistant", "content": "Sure! A blueberry, hope that helps"}], "generator": "gen-a"}]
    _project(project_dir, tmp_path, extra_synthetic=chatty, answer_regex=r"(?!.*hope that helps).*")
    _eval_set(home)
    dg.materialize(SOURCES, resources=_resource(project_dir, home))
    _review_admission(home)  # the sample passes: the chatty row reaches the answer-format rule
    result = dg.materialize(SOURCE_AND_DATASET + [curation.format_consistent], resources=_resource(project_dir, home), partition_key=QUARTER)
    version = result.asset_materializations_for_node("training_dataset")[0].metadata["version"].value
    check = _check(result, "format_consistent")
    assert check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "answer_regex '(?!.*hope that helps).*'" in (check.description or "")
    assert "(1 rows breaking it dropped)" in (check.description or "")
    drops = pq.read_table(home.dataset(version) / "drops.parquet").to_pylist()
    (drop,) = [d for d in drops if d["reason"] == "answer_format"]
    assert drop["source"] == "synthetic" and "does not fully match answer_regex" in drop["detail"]
    answers = [m[-1]["content"] for m in pq.read_table(home.dataset(version) / "train.parquet").column("messages").to_pylist()]
    assert not [a for a in answers if "hope that helps" in a]


def test_admission_gate_per_source_file(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    """Each synthetic / distilled file gets its admission sample when its asset materializes; its rows train only
    once the sample passes; the blocking `sources_admitted` check names held-out files and fails on a version
    holding rows of a file that is no longer admitted."""
    _project(project_dir, tmp_path)
    _eval_set(home)
    resources = _resource(project_dir, home)
    sources = dg.materialize(SOURCES, resources=resources)
    syn_meta = sources.asset_materializations_for_node("synthetic_examples")[0].metadata
    store = ReviewStore(home.database_url())
    syn_batch, dist_batch = sorted(store.batch_ids(kind="admission"), reverse=True)
    assert syn_meta["pending_review"].value == syn_batch and syn_batch.startswith("admission-synthetic-")
    assert "| synthetic.jsonl | 4 | " in syn_meta["admission"].value and "| pending |" in syn_meta["admission"].value
    assert "admission" not in sources.asset_materializations_for_node("seed_examples")[0].metadata

    # the synthetic sample passes, the distilled one is rejected: only the synthetic rows train
    _review_admission(home, {"distilled": "reject"})
    instance = dg.DagsterInstance.ephemeral()
    built = dg.materialize([curation.training_dataset, curation.sources_admitted], resources=resources, instance=instance,
                           partition_key=QUARTER)
    meta = built.asset_materializations_for_node("training_dataset")[0].metadata
    manifest = read_manifest(home, meta["version"].value)
    assert manifest["counts"]["by_source"]["synthetic"] == 4 and "distilled" not in manifest["counts"]["by_source"]
    assert manifest["counts"]["drops_by_reason"]["admission_failed"] == 1
    assert meta["held_out_files"].value == "distilled.jsonl" and "| distilled.jsonl | teacher-xl | 1 |" in meta["admission"].value
    check = _check(built, "sources_admitted")
    assert check.passed and "distilled.jsonl held out (failed: 0 of 1 passed (0% < 80%))" in (check.description or "")

    # a reviewer turns one pass into a reject: 3 of 4 (75%) no longer admits synthetic.jsonl, whose rows are in
    # the version: the blocking check fails
    record_decision(store, syn_batch, store.item_ids(syn_batch)[0], "ana", "reject", reason="on second thought")
    late = dg.materialize([curation.training_dataset, curation.sources_admitted], resources=resources, instance=instance,
                          selection=dg.AssetSelection.checks(curation.sources_admitted), raise_on_error=False)
    failed = _check(late, "sources_admitted")
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert "synthetic.jsonl (4 rows; failed: 3 of 4 passed (75% < 80%))" in (failed.description or "")
