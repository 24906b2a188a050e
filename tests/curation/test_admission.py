"""Source admission: each synthetic / distilled file's sample batch, its state, and what a build does with it."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from flywheel.config import ProjectConfig, load_project
from flywheel.core.records import MAX_ID_CHARS, examples_table
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.curation.admission import (
    admission_batch_id,
    admission_batches,
    materialize_source,
    register_admission_samples,
    verify_admission,
)
from flywheel.curation.build import build_training_dataset
from flywheel.curation.sources import file_sha256
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore
from tests.curation.examples import write_jsonl

WORDS = ("account billing password refund order shipping invoice login email phone plan upgrade delivery coupon "
         "warranty battery screen printer router address payment card return subscription").split()


def _rows(n: int, tag: str, generator: str | None = None) -> list[dict]:
    rng = random.Random(tag)
    out = []
    for i in range(n):
        q = " ".join(rng.sample(WORDS, 6)) + f" {tag} {i}"
        a = f"For {tag} case {i}, open {rng.choice(WORDS)} settings and follow the {rng.choice(WORDS)} steps."
        row = {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        out.append({**row, "generator": generator} if generator else row)
    return out


def _project(project_dir: Path, tmp_path: Path, home: FlywheelHome, **curation: object) -> ProjectConfig:
    files = {"seed": write_jsonl(tmp_path / "seed.jsonl", _rows(20, "seed")),
             "a": write_jsonl(tmp_path / "gen_a.jsonl", _rows(12, "alpha", "gen-a")),
             "b": write_jsonl(tmp_path / "gen_b.jsonl", _rows(10, "beta", "gen-b")),
             "d": write_jsonl(tmp_path / "teacher.jsonl", [{**r, "teacher": "teacher-xl"} for r in _rows(3, "delta")])}
    cfg = yaml.safe_load((project_dir / "flywheel.yaml").read_text(encoding="utf-8"))
    cfg["sources"] = {"seed": [str(files["seed"])], "synthetic": [str(files["a"]), str(files["b"])],
                      "distilled": [str(files["d"])]}
    cfg["curation"].update({"min_examples": 1, "target_examples": 1, "review_sample_size": 0, "admission_sample_size": 5,
                            "min_sample_pass_rate": 0.6, **curation})
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    write_parquet(examples_table([]), home.warehouse("fixed_eval_set", "current"))
    return load_project(project_dir)


def _materialize(project: ProjectConfig, home: FlywheelHome, db: str) -> None:
    for table in ("seed_examples", "synthetic_examples", "distilled_examples"):
        materialize_source(project, home, db, table)


def _decide(store: ReviewStore, batch: str, verdicts: list[str], reviewer: str = "ana") -> list[dict]:
    items = store.items(batch)
    for it, v in zip(items, verdicts, strict=False):
        record_decision(store, batch, it["item_id"], reviewer, v, text="A reviewer's answer." if v == "fix" else None,
                        reason="wrong" if v == "reject" else None)
    return items


def test_batch_ids_name_the_file_and_its_content() -> None:
    assert admission_batch_id("/data/synthetic polite (v2).jsonl", "ab" * 32) == "admission-synthetic-polite-v2-abababab"
    long = admission_batch_id("/x/" + "y" * 300 + ".jsonl", "0123456789abcdef")
    assert len(long) <= MAX_ID_CHARS and long.endswith("-01234567")


def test_each_generated_file_gets_one_seeded_sample_batch(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    project = _project(project_dir, tmp_path, home)
    db = home.database_url()
    src = materialize_source(project, home, db, "synthetic_examples")
    a, b = src.admission
    assert (a.name, a.rows, a.status, a.generators) == ("gen_a.jsonl", 12, "pending", ["gen-a"])
    assert a.batch_id == admission_batch_id(a.file, file_sha256(Path(a.file))) == src.pending_batches[0]
    store = ReviewStore(db)
    assert store.batch(a.batch_id).kind == "admission" and len(store.items(a.batch_id)) == 5  # admission_sample_size
    rows = {r["example_id"]: r for r in pq.read_table(home.warehouse("synthetic_examples", "all")).to_pylist()}
    for it in store.items(a.batch_id):  # each item maps back to its row
        row = rows[json.loads(it["lineage"])["example_id"]]
        assert it["item_id"] == row["example_id"] and it["output"] == row["messages"][-1]["content"]
        assert json.loads(row["lineage"])["file_sha256"] == a.sha256
    assert store.reviewed_keys() == (set(), set())  # no production input held back from weekly review
    assert materialize_source(project, home, db, "seed_examples").admission == []  # human-written: no admission
    # the distilled file (3 rows) is sampled whole; registering again changes nothing
    (d,) = materialize_source(project, home, db, "distilled_examples").admission
    assert len(store.items(d.batch_id)) == 3 and d.source == "distilled" and d.generators == ["teacher-xl"]
    items = store.item_ids(a.batch_id)
    again = register_admission_samples(project, db)
    assert [x.batch_id for x in again] == [a.batch_id, b.batch_id, d.batch_id] and store.item_ids(a.batch_id) == items
    # a changed file is a new file: a new batch
    Path(a.file).write_text(Path(a.file).read_text() + json.dumps(_rows(1, "extra", "gen-a")[0]) + "\n")
    pending = [x.batch_id for x in admission_batches(project, db) if x.status == "pending"]
    assert a.batch_id not in pending and len(pending) == 3 and not store.has_batch(pending[0])  # listed, not registered


def test_build_holds_out_files_until_their_sample_passes(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    project = _project(project_dir, tmp_path, home)
    db = home.database_url()
    _materialize(project, home, db)
    a, b, d = register_admission_samples(project, db)
    first = build_training_dataset(project, home, db)
    m = first.version.manifest
    assert [x["status"] for x in m["admission"]] == ["pending", "pending", "pending"]
    assert m["counts"]["drops_by_reason"] == {"admission_pending": 25}
    assert m["counts"]["train"] + m["counts"]["dropped"] == m["counts"]["input"] == 20 + 25
    assert m["counts"]["by_source"] == {"human": 20}
    rule = next(r for r in first.version.rules if r.name == "sources_admitted")
    assert rule.blocking and rule.passed and "gen_a.jsonl pending: 0 of 5 sample rows decided" in rule.message
    check = verify_admission(project, home, db, first.version.version)
    assert check.passed and "gen_b.jsonl held out (pending" in check.message

    store = ReviewStore(db)
    a_items = _decide(store, a.batch_id, ["pass", "pass", "fix", "reject", "pass"])  # 3 of 5 pass: 60% admits
    _decide(store, b.batch_id, ["pass", "reject", "pass", "reject", "reject"])  # 40%: failed
    _decide(store, d.batch_id, ["pass", "pass"])  # 2 of 3 decided: pending
    second = build_training_dataset(project, home, db)
    m2 = second.version.manifest
    status = {x["name"]: x for x in m2["admission"]}
    assert {k: v["status"] for k, v in status.items()} == {"gen_a.jsonl": "admitted", "gen_b.jsonl": "failed",
                                                            "teacher.jsonl": "pending"}
    assert status["gen_a.jsonl"]["pass_rate"] == 0.6 and status["gen_a.jsonl"]["kept"] == 11
    assert status["gen_b.jsonl"]["held_out"] == 10 and status["gen_b.jsonl"]["detail"] == "2 of 5 passed (40% < 60%)"
    assert m2["counts"]["drops_by_reason"] == {"admission_failed": 10, "admission_pending": 3, "admission_rejected": 1}
    drops = pq.read_table(second.version.path / "drops.parquet").to_pylist()
    rejected = next(d for d in drops if d["reason"] == "admission_rejected")
    assert rejected["example_id"] == a_items[3]["item_id"] and a.batch_id in rejected["detail"]
    train = pq.read_table(second.version.path / "train.parquet").to_pylist()
    assert Counter(r["source"] for r in train) == {"human": 20, "synthetic": 11}
    (fixed,) = [r for r in train if r["human_fixed"]]
    assert fixed["messages"][-1]["content"] == "A reviewer's answer."
    assert json.loads(fixed["lineage"])["original_example_id"] == a_items[2]["item_id"]
    assert a_items[2]["item_id"] not in {r["example_id"] for r in train}
    card = (second.version.path / "card.md").read_text()
    assert "## Source admission" in card and "| gen_b.jsonl | gen-b | 10 |" in card and "40% (2 passed)" in card
    check = verify_admission(project, home, db, second.version.version)
    assert check.passed and "gen_b.jsonl held out (failed: 2 of 5 passed" in check.message

    # a reviewer changes a pass to a reject: gen_a.jsonl falls below the minimum, and its rows in this version
    # are rows of a file no longer admitted
    record_decision(store, a.batch_id, a_items[0]["item_id"], "ana", "reject", reason="on second thought")
    late = verify_admission(project, home, db, second.version.version)
    assert not late.passed and "gen_a.jsonl (11 rows; failed: 2 of 5 passed (40% < 60%))" in late.message

    # closed by hand with 2 of 3 decided (both passed): the distilled file is admitted
    store.close_batch(d.batch_id)
    third = build_training_dataset(project, home, db).version.manifest
    assert {x["name"]: x["status"] for x in third["admission"]}["teacher.jsonl"] == "admitted"
    assert third["counts"]["by_source"].get("distilled") == 3 and "synthetic" not in third["counts"]["by_source"]


def test_a_file_closed_without_decisions_fails(project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    project = _project(project_dir, tmp_path, home)
    db = home.database_url()
    _materialize(project, home, db)
    a, _, _ = register_admission_samples(project, db)
    ReviewStore(db).close_batch(a.batch_id)
    (closed, _, _) = admission_batches(project, db)
    assert closed.status == "failed" and closed.detail == f"batch {a.batch_id} closed with no decision"
