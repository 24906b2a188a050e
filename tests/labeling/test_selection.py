"""flywheel.labeling.selection: priorities, quotas, near-duplicates collapsed, reviewed items left out."""

from __future__ import annotations

from flywheel.core.storage import FlywheelHome
from flywheel.labeling.candidates import load_week_candidates
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.selection import allot_quotas, select_batch
from flywheel.labeling.store import ReviewStore
from tests.labeling.traffic import WEEK, cfg, traffic, words, write_week


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
