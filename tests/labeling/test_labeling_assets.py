"""The labeling assets, their checks and the review-complete sensor, materialized with Dagster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import yaml

from assets.labeling import labeling_batch, reviewed_examples
from assets.resources import FlywheelResource
from flywheel.core.records import EXAMPLE_SCHEMA
from flywheel.core.storage import FlywheelHome
from flywheel.labeling.batches import create_sample_batch
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore
from tests.labeling.traffic import WEEK, small_batch, traffic, words, write_week


def test_assets_materialize_and_check(home: FlywheelHome, project_dir: Path) -> None:
    write_week(home, traffic())
    db = f"sqlite:///{home.root.parent / 'dagster-review.db'}"
    res = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root), database_url=db)}
    result = dg.materialize([labeling_batch], partition_key=WEEK, resources=res)
    assert result.success
    md = result.asset_materializations_for_node("labeling_batch")[0].metadata
    assert md["items_selected"].value == 70  # 73 interactions, 3 near-duplicates folded; all fit in 200
    assert md["items_dropped_by_cap"].value == 0
    assert md["pii_ner"].value is False  # the test project names no installed spaCy pipeline: said, not hidden
    assert md["pii_scan"].value["texts"] > 0 and "spaCy" in md["pii_scan"].value["ner_missing_reason"]
    batch = pq.read_table(home.warehouse("labeling_batch", WEEK))
    assert batch.num_rows == 70 and (home.labeling(WEEK) / "batch.jsonl").exists()
    assert "Quality rubric (test project)" in batch.column("rubric")[0].as_py()

    store = ReviewStore(db)
    ids = store.item_ids(WEEK)
    for k, iid in enumerate(ids):
        verdict = ("pass", "fix", "reject")[k % 3]
        record_decision(store, WEEK, iid, "ann", verdict, text="fixed" if verdict == "fix" else None)
    for iid in ids[:9]:
        record_decision(store, WEEK, iid, "bob", "pass")
    result = dg.materialize([labeling_batch, reviewed_examples], partition_key=WEEK, resources=res,
                            selection=[reviewed_examples])
    assert result.success
    out = pq.read_table(home.warehouse("reviewed_examples", WEEK))
    assert out.schema.equals(EXAMPLE_SCHEMA)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["reviewer_agreement"].metadata["double_reviewed"].value == 9
    assert checks["reviewer_agreement"].passed is False  # ann and bob agree on 3 of 9
    assert checks["fix_and_reject_rates"].passed is True
    # re-running the batch while it is being reviewed keeps it as it is
    again = dg.materialize([labeling_batch], partition_key=WEEK, resources=res)
    assert again.asset_materializations_for_node("labeling_batch")[0].metadata["kept_existing_batch"].value is True


def test_sensor_requests_one_run_per_completion_state(store: ReviewStore, tmp_path: Path, project_dir: Path) -> None:
    from sensors.labeling import review_complete_sensor

    items = small_batch(store, 2)
    create_sample_batch(store, "sample-x", [{"messages": [{"role": "user", "content": "q"},
                                                          {"role": "assistant", "content": "a"}]}])
    resource = FlywheelResource(home_dir=str(tmp_path / "home"), database_url=store.url, project_dir=str(project_dir))
    instance = dg.DagsterInstance.ephemeral()

    def evaluate() -> list:
        return list(review_complete_sensor(dg.build_sensor_context(instance=instance, resources={"flywheel": resource})))

    assert isinstance(evaluate()[0], dg.SkipReason)  # nothing complete yet
    record_decision(store, WEEK, items[0]["item_id"], "ann", "pass")
    assert isinstance(evaluate()[0], dg.SkipReason)
    record_decision(store, WEEK, items[1]["item_id"], "ann", "pass")
    (req,) = evaluate()
    assert req.partition_key == WEEK and ":complete:" in req.run_key
    assert [r.run_key for r in evaluate()] == [req.run_key]  # same state, same key: Dagster runs it once
    record_decision(store, WEEK, items[1]["item_id"], "ann", "fix", text="better")  # a change of mind
    (changed,) = evaluate()
    assert changed.run_key != req.run_key
    store.close_batch(WEEK)
    (closed,) = evaluate()
    assert ":closed:" in closed.run_key
    # built by hand (or a backfill, or the demo) from exactly these decisions: nothing more to run
    assert dg.materialize([reviewed_examples], partition_key=WEEK, instance=instance,
                          resources={"flywheel": resource}).success
    assert isinstance(evaluate()[0], dg.SkipReason)


def test_batch_from_the_real_capture_stage(home: FlywheelHome, project_dir: Path) -> None:
    """Landing files written with the capture SDK -> interactions + signals assets -> labeling_batch."""
    from assets.capture import interaction_signals, interactions
    from flywheel.capture.sdk import CaptureWriter

    t0 = datetime(2026, 11, 17, 10, tzinfo=UTC)
    with CaptureWriter(home) as w:
        ids = []
        for k in range(6):
            ids.append(w.log_interaction(
                [{"role": "user", "content": f"question {words(k)}"}], f"answer {k}", session_id=f"s{k}",
                user_id="u", model_version="m1", latency_ms=5.0, confidence=0.3 if k == 5 else 0.9,
                ts=t0 + timedelta(minutes=10 * k)))
        w.log_feedback(ids[0], "correction", text="the right answer", ts=t0 + timedelta(minutes=1))
        w.log_feedback(ids[1], "thumbs_down", ts=t0 + timedelta(minutes=11))
        w.log_feedback(ids[2], "copy", ts=t0 + timedelta(minutes=21))
    db = f"sqlite:///{home.root.parent / 'capture-review.db'}"
    res = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root), database_url=db)}
    assert dg.materialize([interactions, interaction_signals], partition_key="2026-11-17", resources=res).success
    assert dg.materialize([labeling_batch], partition_key=WEEK, resources=res).success
    batch = pq.read_table(home.warehouse("labeling_batch", WEEK)).to_pylist()
    kinds = {r["interaction_id"]: r["kind"] for r in batch}
    assert kinds[ids[0]] == "correction" and kinds[ids[1]] == "negative" and kinds[ids[5]] == "low_confidence"
    assert next(r for r in batch if r["interaction_id"] == ids[0])["correction_text"] == "the right answer"
    assert len(batch) == 6


def test_fix_and_reject_rates_are_judged_only_on_enough_decisions(store: ReviewStore, tmp_path: Path,
                                                                   project_dir: Path) -> None:
    items = small_batch(store, 4)
    for it in items:
        record_decision(store, WEEK, it["item_id"], "ann", "reject", reason="off-topic")
    resource = FlywheelResource(home_dir=str(tmp_path / "home"), database_url=store.url, project_dir=str(project_dir))

    def rates_check() -> dg.AssetCheckEvaluation:
        result = dg.materialize([reviewed_examples], partition_key=WEEK, resources={"flywheel": resource})
        return next(c for c in result.get_asset_check_evaluations() if c.check_name == "fix_and_reject_rates")

    few = rates_check()
    assert few.passed and "only 4 items decided" in (few.description or "")
    cfg = yaml.safe_load((project_dir / "flywheel.yaml").read_text())
    cfg.setdefault("labeling", {})["rate_warn_min_decided"] = 4
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(cfg))
    judged = rates_check()
    assert not judged.passed and "reject rate 100%" in (judged.description or "")


def test_one_interaction_on_two_days_does_not_fail_the_week(home: FlywheelHome, project_dir: Path) -> None:
    """Issue 11: an interaction id captured on two days of the week failed labeling_batch (duplicate item ids)."""
    recs = traffic()
    i, s = recs[20]
    recs.append(({**i, "ts": i["ts"] + timedelta(days=1), "output": "sent again"}, {**s, "ts": s["ts"] + timedelta(days=1)}))
    write_week(home, recs)
    db = f"sqlite:///{home.root.parent / 'dup-review.db'}"
    res = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root), database_url=db)}
    result = dg.materialize([labeling_batch], partition_key=WEEK, resources=res)
    assert result.success
    md = result.asset_materializations_for_node("labeling_batch")[0].metadata
    assert md["duplicate_id_rows"].value == 1 and md["items_selected"].value == 70
    batch = pq.read_table(home.warehouse("labeling_batch", WEEK)).to_pylist()
    assert next(r for r in batch if r["item_id"] == i["interaction_id"])["output"] == "sent again"
