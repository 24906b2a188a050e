"""A dataset version's review batches: conflicts beside the kept answer, the review status check, and the
conflict verdicts applied to the next version."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from flywheel.config import ProjectConfig, load_project
from flywheel.core.records import examples_table
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.curation.build import build_training_dataset
from flywheel.curation.review_batches import conflict_review_status, create_conflict_batch
from flywheel.curation.sources import read_examples, write_source_examples
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewError, ReviewStore
from tests.curation.examples import ex, write_jsonl
from tests.curation.test_admission import WORDS


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    return ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")


def test_conflict_batch_items_and_completion(store: ReviewStore) -> None:
    """Conflicts become items showing the dropped answer with the kept one beside it; a closed batch counts as reviewed."""
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund window for annual plans?"}]
    conflicts = [
        {"example_id": "drop1", "source": "synthetic", "generator": "g1", "input": "Refund window for annual plans?",
         "messages": [*prompt, {"role": "assistant", "content": "Never."}], "answer": "Never.",
         "kept_example_id": "keep1", "kept_source": "real", "kept_answer": "30 days.", "similarity": 0.1},
        {"example_id": "drop2", "source": "distilled", "generator": "t", "input": "Shipping to Canada?",
         "answer": "Two weeks.", "kept_example_id": "keep2", "kept_source": "human", "kept_answer": "5-7 days.",
         "similarity": 0.2},
    ]
    items = create_conflict_batch(store, "conflicts-abc", [*conflicts, conflicts[0]], rubric="R", source="c.parquet")
    assert [it["item_id"] for it in items] == store.item_ids("conflicts-abc") == ["drop1", "drop2"]
    first, second = store.items("conflicts-abc")
    assert first["messages"] == prompt and first["output"] == "Never." and first["kind"] == "conflict"
    assert json.loads(first["lineage"])["kept_answer"] == "30 days." and "30 days." in first["evidence"]
    assert second["messages"] == [{"role": "user", "content": "Shipping to Canada?"}] and second["output"] == "Two weeks."
    assert store.reviewed_keys() == (set(), set())  # production inputs are not held back from weekly review
    assert conflict_review_status(store.url, "abc", 0) == (True, "no conflicting examples")
    assert conflict_review_status(store.url, "abc", 2) == (
        False, "2 of 2 conflicts undecided (review batch conflicts-abc: `flywheel review --batch conflicts-abc`)")
    assert not conflict_review_status(store.url, "zzz", 3)[0]  # never registered
    record_decision(store, "conflicts-abc", "drop1", "ana", "pass")
    assert conflict_review_status(store.url, "abc", 2)[1].startswith("1 of 2 conflicts undecided")
    with pytest.raises(ReviewError, match="cannot be replaced"):  # decisions are never wiped by a re-registration
        create_conflict_batch(store, "conflicts-abc", conflicts)
    store.close_batch("conflicts-abc")
    assert conflict_review_status(store.url, "abc", 2)[0]
    with pytest.raises(ReviewError, match="example_id and answer"):
        create_conflict_batch(store, "conflicts-bad", [{"example_id": "x"}])


def _conflicting_project(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> tuple[ProjectConfig, list[dict], list[dict]]:
    """20 seed rows plus 4 seed rows (D) whose inputs reviewers answered differently in a reviewed batch (K,
    fixed by the reviewer, so more trusted): the conflicts step drops each D beside its K."""
    seeds = [ex(f"{' '.join(random.Random(i).sample(WORDS, 6))} case {i}", f"For case {i}, open the settings page.")
             for i in range(20)]
    questions = ["What is the refund window for annual plans?", "Can I ship an order to Canada?",
                 "How do I change the billing email?", "Where do I find my invoice number?"]
    dropped = [ex(q, f"Call the hotline on a Sunday ({i}).") for i, q in enumerate(questions)]
    kept = [ex(q, f"Open Account > Billing; the answer is in section {i}.", "real", human_fixed=True)
            for i, q in enumerate(questions)]
    seed_file = write_jsonl(tmp_path / "seed.jsonl", [{"messages": r["messages"]} for r in seeds + dropped])
    write_parquet(examples_table(kept), home.warehouse("reviewed_examples", "2026-01-05"))
    write_parquet(examples_table([]), home.warehouse("fixed_eval_set", "current"))
    cfg = yaml.safe_load((project_dir / "flywheel.yaml").read_text(encoding="utf-8"))
    cfg["sources"]["seed"] = [str(seed_file)]
    cfg["curation"].update({"min_examples": 1, "target_examples": 1, "review_sample_size": 0})
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    project = load_project(project_dir)
    write_source_examples(project, home, "seed_examples")
    ids = {r["messages"][-1]["content"]: r["example_id"] for r in read_examples([home.warehouse("seed_examples", "all")])}
    return project, [{**r, "example_id": ids[r["messages"][-1]["content"]]} for r in dropped], kept


def test_conflict_verdicts_are_applied_to_the_next_version(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    """pass keeps both, fix replaces both with one human-fixed row, reject keeps the dropped one out, a reject
    whose reason starts with "both" drops the kept one too; the next version holds exactly those rows."""
    project, dropped, kept = _conflicting_project(project_dir, tmp_path, home)
    db = home.database_url()
    first = build_training_dataset(project, home, db)
    v1 = first.version
    assert first.conflict_batch == f"conflicts-{v1.version}" and v1.manifest["counts"]["conflicts"] == 4
    store = ReviewStore(db)
    assert sorted(store.item_ids(first.conflict_batch)) == sorted(r["example_id"] for r in dropped)
    assert "a reject reason starting with 'both' drops both" in store.items(first.conflict_batch)[0]["evidence"]
    v1_ids = set(pq.read_table(v1.path / "train.parquet").column("example_id").to_pylist())
    assert not v1_ids & {r["example_id"] for r in dropped} and {r["example_id"] for r in kept} <= v1_ids
    d1, d2, d3, d4 = (r["example_id"] for r in dropped)
    record_decision(store, first.conflict_batch, d1, "ana", "pass")
    record_decision(store, first.conflict_batch, d2, "ana", "fix", text="Billing > Email; change it there.")
    record_decision(store, first.conflict_batch, d3, "ana", "reject", reason="the hotline is closed on Sundays")
    record_decision(store, first.conflict_batch, d4, "ana", "reject", reason="Both wrong: it is under Orders")

    second = build_training_dataset(project, home, db)
    v2 = second.version
    train = pq.read_table(v2.path / "train.parquet").to_pylist()
    (fixed,) = [r for r in train if r["messages"][-1]["content"] == "Billing > Email; change it there."]
    k1, k2, k3, _k4 = (r["example_id"] for r in kept)
    assert {r["example_id"] for r in train} == (v1_ids - {k2, _k4}) | {d1, fixed["example_id"]}
    assert len(train) == len(v1_ids) - 2 + 2 and k1 in v1_ids and k3 in v1_ids
    assert fixed["human_fixed"] and fixed["messages"][:-1] == dropped[1]["messages"][:-1]
    assert json.loads(fixed["lineage"])["conflict_batch"] == first.conflict_batch
    drops = {(d["example_id"], d["reason"]) for d in pq.read_table(v2.path / "drops.parquet").to_pylist()}
    assert {(k2, "conflict_fixed"), (d3, "conflict_rejected"), (d4, "conflict_rejected"),
            (_k4, "conflict_rejected_both")} <= drops
    m = v2.manifest
    assert m["counts"]["conflicts"] == 0 and second.conflict_batch is None  # nothing left to review
    assert m["conflict_review"] == {
        "batches": [{"batch": first.conflict_batch, "items": 4, "decided": 4, "pass": 1, "fix": 1, "reject": 1,
                     "reject_both": 1}],
        "applied": {"passed: both kept": 1, "fixed: one row replaces both": 1, "rejected: dropped one stays out": 1,
                    "rejected: both dropped": 1}}
    card = (v2.path / "card.md").read_text()
    assert "## Conflict verdicts applied" in card and f"| {first.conflict_batch} | 4 | 4 | 1 | 1 | 1 | 1 |" in card
    # a third build applies the same verdicts: the same rows, the same version
    assert build_training_dataset(project, home, db).version.version == v2.version
