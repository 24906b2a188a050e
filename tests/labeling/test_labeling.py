"""Batch selection, the decision store (SQLite and PostgreSQL), decisions by file, labels back into examples."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from assets.labeling import labeling_batch, reviewed_examples
from assets.resources import FlywheelResource
from flywheel.config import LabelingConfig, LabelingQuotas
from flywheel.core.records import EXAMPLE_SCHEMA
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.labeling.batches import (
    DecisionFileError,
    allot_quotas,
    build_reviewed_examples,
    cohens_kappa,
    create_conflict_batch,
    create_sample_batch,
    export_batch,
    import_decisions,
    load_example_source,
    load_week_candidates,
    record_decision,
    resolve_decisions,
    review_stats,
    sample_batch_results,
    select_batch,
)
from flywheel.labeling.store import ReviewError, ReviewStore, UnknownItemError
from tests.shared_data import DATASETS

WEEK = "2026-11-16"

INTERACTIONS_SCHEMA = pa.schema([
    ("interaction_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("session_id", pa.string()),
    ("user_id", pa.string()), ("model_version", pa.string()),
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("input_text", pa.string()), ("output", pa.string()), ("latency_ms", pa.float64()),
    ("confidence", pa.float64()), ("metadata", pa.string()),
])
SIGNALS_SCHEMA = pa.schema([
    ("interaction_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("session_id", pa.string()),
    ("signal", pa.string()), ("weight", pa.float64()), ("correction_text", pa.string()), ("evidence", pa.string()),
])
WEIGHTS = {"correction": 3.0, "negative": 2.0, "positive": 1.0, "none": 0.5}


def interaction(iid: str, day: int, text: str, signal: str = "none", confidence: float | None = None,
                correction: str | None = None, output: str | None = None) -> tuple[dict, dict]:
    ts = datetime(2026, 11, 16, 9, tzinfo=UTC) + timedelta(days=day, minutes=int(iid.split("-")[-1]) % 600)
    i = {"interaction_id": iid, "ts": ts, "session_id": f"s-{iid}", "user_id": "u1", "model_version": "m1",
         "messages": [{"role": "system", "content": "You are a support bot."}, {"role": "user", "content": text}],
         "input_text": text, "output": output or f"answer to {text}", "latency_ms": 12.0, "confidence": confidence,
         "metadata": "{}"}
    s = {"interaction_id": iid, "ts": ts, "session_id": f"s-{iid}", "signal": signal, "weight": WEIGHTS[signal],
         "correction_text": correction, "evidence": {"correction": "correction", "negative": "thumbs_down",
                                                     "positive": "copy", "none": ""}[signal]}
    return i, s


def write_week(home: FlywheelHome, records: list[tuple[dict, dict]]) -> None:
    """Write the capture stage's daily Parquet files (the team contract) for the records' days."""
    by_day: dict[str, list[tuple[dict, dict]]] = {}
    for i, s in records:
        by_day.setdefault(i["ts"].date().isoformat(), []).append((i, s))
    for day, recs in by_day.items():
        write_parquet(pa.Table.from_pylist([i for i, _ in recs], schema=INTERACTIONS_SCHEMA), home.warehouse("interactions", day))
        write_parquet(pa.Table.from_pylist([s for _, s in recs], schema=SIGNALS_SCHEMA), home.warehouse("interaction_signals", day))


def words(k: int) -> str:
    """A distinct phrase per k (inputs that are not near-duplicates of each other)."""
    return hashlib.sha1(str(k).encode()).hexdigest()[:20]


def traffic() -> list[tuple[dict, dict]]:
    recs = []
    n = 0
    for k in range(12):  # corrections
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"export {words(k)} to csv", "correction",
                                correction=f"Go to Reports > Export > CSV ({k})."))
    for _ in range(3):  # near-duplicates of the first correction
        n += 1
        recs.append(interaction(f"i-{n}", 2, f"Export {words(0).upper()} to CSV??", "negative"))
    for k in range(10):  # negatives
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"crash on {words(100 + k)}", "negative"))
    for k in range(8):  # low confidence
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"voucher {words(200 + k)}", "none", confidence=0.2))
    for k in range(40):  # controls
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"opening time {words(300 + k)}", "positive" if k % 2 else "none",
                                confidence=0.9))
    return recs


def cfg(size: int = 20) -> LabelingConfig:
    return LabelingConfig(batch_size=size, quotas=LabelingQuotas(correction=0.4, negative=0.3, low_confidence=0.2, control=0.1))


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    return ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")


# --- selection ---------------------------------------------------------------------------------
def test_week_candidates_read_with_duckdb(home: FlywheelHome) -> None:
    write_week(home, traffic())
    rows, counts = load_week_candidates(home, WEEK)
    assert counts["interactions"] == 73 and counts["days_with_interactions"] == 7
    assert {r["signal"] for r in rows} == {"correction", "negative", "positive", "none"}
    assert rows == sorted(rows, key=lambda r: r["ts"])
    with pytest.raises(ValueError, match="not a Monday"):
        load_week_candidates(home, "2026-11-17")


def test_selection_quotas_collapse_and_counts(home: FlywheelHome) -> None:
    write_week(home, traffic())
    rows, _ = load_week_candidates(home, WEEK)
    sel = select_batch(WEEK, rows, cfg(20), rubric="R")
    kinds = [it["kind"] for it in sel.items]
    # corrections get their 40 % (8 of 20), not the whole batch; then 6 negatives, 4 low-confidence, 2 control
    assert sel.selected == {"correction": 8, "negative": 6, "low_confidence": 4, "control": 2}
    assert kinds == sorted(kinds, key=["correction", "negative", "low_confidence", "control"].index)
    assert sel.candidates == {"correction": 12, "negative": 13, "low_confidence": 8, "control": 40}
    # the three near-identical "export report 0" negatives were folded into the correction
    assert sel.collapsed["negative"] == 3
    top = sel.items[0]
    assert top["input_text"] == f"export {words(0)} to csv" and top["duplicate_count"] == 4
    assert top["correction_text"] and top["rubric"] == "R" and top["signal"] == "correction"
    # counts are conserved: unique = selected + dropped by the cap
    for k in sel.unique:
        assert sel.unique[k] == sel.selected[k] + sel.dropped_by_cap[k]
    assert sel.dropped_by_cap["correction"] == 4
    # deterministic (seeded control sample)
    again = select_batch(WEEK, rows, cfg(20), rubric="R")
    assert [i["item_id"] for i in again.items] == [i["item_id"] for i in sel.items]


def test_unused_quota_flows_to_other_kinds() -> None:
    assert allot_quotas(10, {"correction": 0.4, "negative": 0.3, "low_confidence": 0.2, "control": 0.1},
                        {"correction": 50, "negative": 1, "low_confidence": 0, "control": 2}) == {
        "correction": 8, "negative": 1, "low_confidence": 0, "control": 1}
    assert sum(allot_quotas(200, {"correction": 0.9, "negative": 0.9, "low_confidence": 0, "control": 0},
                            {"correction": 500, "negative": 500, "low_confidence": 0, "control": 0}).values()) == 200


def test_already_reviewed_items_are_not_sent_again(home: FlywheelHome, store: ReviewStore) -> None:
    write_week(home, traffic())
    rows, _ = load_week_candidates(home, WEEK)
    first = select_batch("2026-11-09", rows, cfg(10))
    store.register_batch("2026-11-09", first.items, kind="weekly")
    record_decision(store, "2026-11-09", first.items[0]["item_id"], "ann", "pass")
    store.close_batch("2026-11-09")  # closed: only the decided item stays "reviewed"
    ids, keys = store.reviewed_keys(exclude_batch=WEEK)
    assert ids == {first.items[0]["item_id"]}
    sel = select_batch(WEEK, rows, cfg(200), reviewed_ids=ids, reviewed_inputs=keys)
    chosen = {i["item_id"] for i in sel.items}
    assert first.items[0]["item_id"] not in chosen and first.items[1]["item_id"] in chosen
    # the same input under another interaction id is recognised by its normalized text
    assert sel.already_reviewed["correction"] == 1 and sel.already_reviewed["negative"] == 3


# --- decisions and the store -------------------------------------------------------------------
def _batch(store: ReviewStore, n: int = 4, batch: str = WEEK) -> list[dict]:
    recs = traffic()[:n]
    rows = [{**i, "ts": i["ts"].isoformat(), **{k: s[k] for k in ("signal", "weight", "correction_text", "evidence")}}
            for i, s in recs]
    sel = select_batch(batch, rows, cfg(n))
    store.register_batch(batch, sel.items, kind="weekly", rubric="# Rubric")
    return sel.items


def check_store_semantics(store: ReviewStore) -> None:
    items = _batch(store)
    a, b = items[0]["item_id"], items[1]["item_id"]
    record_decision(store, WEEK, a, "ann", "pass")
    record_decision(store, WEEK, a, "bob", "fix", text="Better answer")
    record_decision(store, WEEK, a, "ann", "reject", reason="off topic")  # ann changes her mind
    ds = store.decisions(WEEK)
    assert sorted((d.reviewer, d.verdict) for d in ds) == [("ann", "reject"), ("bob", "fix")]
    assert next(d for d in ds if d.reviewer == "ann").reason == "off topic"
    with pytest.raises(UnknownItemError):
        record_decision(store, WEEK, "not-an-item", "ann", "pass")
    with pytest.raises(ReviewError, match="needs the edited answer"):
        record_decision(store, WEEK, b, "ann", "fix", text="  ")
    with pytest.raises(ReviewError, match="verdict"):
        record_decision(store, WEEK, b, "ann", "maybe")
    # two reviewers at once lose nothing
    errors: list[Exception] = []

    def work(name: str) -> None:
        try:
            for it in items:
                record_decision(store, WEEK, it["item_id"], name, "pass")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"r{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.decisions(WEEK)) == 2 + 3 * len(items)
    prog = store.progress(WEEK)
    assert prog.complete and prog.decided == len(items)
    assert not store.progress(WEEK).closed
    with pytest.raises(ReviewError, match="cannot be replaced"):
        store.register_batch(WEEK, items, kind="weekly")


def test_store_on_sqlite(store: ReviewStore) -> None:
    check_store_semantics(store)


@pytest.mark.postgres
def test_store_on_postgres(pg_url: str) -> None:
    check_store_semantics(ReviewStore(pg_url))


def test_conflicts_resolve_cautiously_and_kappa() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    from flywheel.labeling.store import Decision

    def d(item: str, who: str, verdict: str, minutes: int, text: str | None = None) -> Decision:
        ts = t0 + timedelta(minutes=minutes)
        return Decision(WEEK, item, who, verdict, text, None, ts, ts)

    res = resolve_decisions([d("a", "ann", "pass", 1), d("a", "bob", "fix", 2, "x"),
                             d("b", "ann", "fix", 1, "old"), d("b", "bob", "fix", 5, "new"),
                             d("c", "ann", "reject", 1), d("c", "bob", "fix", 9, "y")])
    assert (res["a"].verdict, res["a"].text, res["a"].conflict) == ("fix", "x", True)
    assert (res["b"].text, res["b"].reviewer, res["b"].conflict) == ("new", "bob", False)
    assert res["c"].verdict == "reject"
    assert cohens_kappa([("pass", "pass"), ("fix", "fix"), ("reject", "reject")]) == pytest.approx(1.0)
    # textbook example: 20 items, po = 0.7, pe = 0.5 -> kappa 0.4
    pairs = [("pass", "pass")] * 7 + [("fix", "fix")] * 7 + [("pass", "fix")] * 3 + [("fix", "pass")] * 3
    assert cohens_kappa(pairs) == pytest.approx(0.4)
    assert cohens_kappa([]) is None


def test_reviewed_examples_rows(store: ReviewStore) -> None:
    items = _batch(store, 4)
    record_decision(store, WEEK, items[0]["item_id"], "ann", "pass")
    record_decision(store, WEEK, items[1]["item_id"], "ann", "fix", text="<b>Fixed</b> answer")
    record_decision(store, WEEK, items[2]["item_id"], "ann", "reject", reason="spam")
    rows, counts = build_reviewed_examples(WEEK, store.items(WEEK), store.decisions(WEEK))
    assert counts == {"items": 4, "examples": 2, "passed": 1, "fixed": 1, "rejected": 1, "undecided": 1}
    t = pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA)
    assert t.column("source").to_pylist() == ["real", "real"]
    assert t.column("human_fixed").to_pylist() == [False, True]
    assert rows[0]["messages"][-1]["content"] == items[0]["output"]
    assert rows[1]["messages"][-1] == {"role": "assistant", "content": "<b>Fixed</b> answer"}
    lin = json.loads(rows[1]["lineage"])
    assert lin["interaction_id"] == items[1]["interaction_id"] and lin["batch"] == WEEK and lin["reviewer"] == "ann"
    assert rows[0]["weight"] == 3.0  # a correction's signal weight
    stats = review_stats(store.items(WEEK), store.decisions(WEEK))
    assert stats.fix_rate == pytest.approx(1 / 3) and stats.kappa is None


# --- the file route ------------------------------------------------------------------------------
def test_export_import_roundtrip_and_all_or_nothing(store: ReviewStore, tmp_path: Path) -> None:
    items = _batch(store, 4)
    out = export_batch(store, WEEK, tmp_path / "batch.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["item_id"] for x in lines] == [i["item_id"] for i in items] and lines[0]["rubric"] == "# Rubric"
    lines[0]["verdict"] = "pass"
    lines[1].update(verdict="fix", text="edited")
    lines[2].update(verdict="reject", reason="wrong")
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    bad_cases = {
        "unknown item": dict(lines[3], item_id="nope", verdict="pass"),
        "verdict 'maybe'": dict(lines[3], verdict="maybe"),
        "needs the edited answer": dict(lines[3], verdict="fix", text=""),
    }
    for needle, bad_line in bad_cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(json.dumps(x) for x in [*lines[:3], bad_line]) + "\n")
        with pytest.raises(DecisionFileError, match=f"line 4: .*{needle}"):
            import_decisions(store, bad, "ann")
        assert store.decisions(WEEK) == []  # nothing partially applied
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(lines[0]) + "\n{not json\n")
    with pytest.raises(DecisionFileError, match="line 2: invalid JSON"):
        import_decisions(store, broken, "ann")
    assert store.decisions(WEEK) == []

    report = import_decisions(store, good, "ann")
    assert (report.applied, report.skipped_undecided) == (3, 1)
    assert {d.item_id: d.verdict for d in store.decisions(WEEK)} == {
        items[0]["item_id"]: "pass", items[1]["item_id"]: "fix", items[2]["item_id"]: "reject"}
    store.close_batch(WEEK)
    assert store.progress(WEEK).complete and store.progress(WEEK).state == "closed"
    with pytest.raises(DecisionFileError, match="closed"):
        import_decisions(store, good, "bob")


def test_sample_batch_of_an_example_file(store: ReviewStore, home: FlywheelHome) -> None:
    rows = load_example_source(home, str(DATASETS / "chatml_openai_toy.jsonl"))
    usable = [r for r in rows if r["messages"][-1]["role"] == "assistant"]
    items = create_sample_batch(store, "sample-toy", usable, n=3, seed=1, rubric="R", source="toy")
    assert len(items) == 3 and store.batch("sample-toy").kind == "sample"
    assert items == [dict(i) for i in store.items("sample-toy")]
    record_decision(store, "sample-toy", items[0]["item_id"], "ann", "reject", reason="not our tone")
    res = sample_batch_results(store, "sample-toy")
    assert [r["verdict"] for r in res] == ["reject", None, None]
    assert res[0]["reason"] == "not our tone" and res[0]["lineage"]["file"] == "toy"
    # same seed, same sample
    again = create_sample_batch(ReviewStore(f"sqlite:///{home.root.parent / 'other.db'}"), "sample-toy", usable, n=3, seed=1)
    assert [i["item_id"] for i in again] == [i["item_id"] for i in items]


# --- Dagster --------------------------------------------------------------------------------------
def test_assets_materialize_and_check(home: FlywheelHome, project_dir: Path) -> None:
    write_week(home, traffic())
    db = f"sqlite:///{home.root.parent / 'dagster-review.db'}"
    res = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root), database_url=db)}
    result = dg.materialize([labeling_batch], partition_key=WEEK, resources=res)
    assert result.success
    md = result.asset_materializations_for_node("labeling_batch")[0].metadata
    assert md["items_selected"].value == 70  # 73 interactions, 3 near-duplicates folded; all fit in 200
    assert md["items_dropped_by_cap"].value == 0
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
    from schedules.labeling import review_complete_sensor

    items = _batch(store, 2)
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
    from flywheel.capture.ingestion import CaptureWriter

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
    items = _batch(store, 4)
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


def test_conflict_batch_items_and_completion(store: ReviewStore) -> None:
    """Conflicts become items showing the dropped answer with the kept one beside it; a closed batch counts as reviewed."""
    from flywheel.curation.pipeline import conflict_review_status

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
