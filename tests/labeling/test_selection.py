"""flywheel.labeling.selection: priorities, quotas, near-duplicates collapsed, reviewed items left out."""

from __future__ import annotations

from flywheel.core.records import MAX_ID_CHARS
from flywheel.core.storage import FlywheelHome
from flywheel.labeling.candidates import load_week_candidates
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.selection import allot_quotas, select_batch
from flywheel.labeling.store import ReviewStore
from tests.labeling.traffic import WEEK, cfg, interaction, traffic, words, write_week


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


def test_an_interaction_id_on_two_days_is_one_item_its_latest_row(home: FlywheelHome, store: ReviewStore) -> None:
    """Issue 11: the same interaction_id captured on two days of a week failed the batch (duplicate item ids)."""
    first = interaction("i-1", 0, f"export {words(1)} to csv", "correction", correction="Use Reports > Export.")
    again = interaction("i-1", 2, f"export {words(1)} to csv", "correction", correction="Use Reports > Export.",
                        output="the answer sent later")
    other = interaction("i-2", 1, f"crash on {words(2)}", "negative")
    other_changed = interaction("i-2", 3, f"an unrelated {words(3)} question", "negative")
    write_week(home, [first, again, other, other_changed, interaction("i-3", 4, f"voucher {words(4)}")])
    rows, _ = load_week_candidates(home, WEEK)
    sel = select_batch(WEEK, rows, cfg(20))
    assert sorted(it["item_id"] for it in sel.items) == ["i-1", "i-2", "i-3"]
    by_id = {it["item_id"]: it for it in sel.items}
    assert by_id["i-1"]["output"] == "the answer sent later" and by_id["i-1"]["duplicate_ids"] == []
    assert by_id["i-2"]["input_text"].startswith("an unrelated")
    assert sel.metadata()["duplicate_id_rows"] == 2 and sel.metadata()["unusable_id_rows"] == 0
    store.register_batch(WEEK, sel.items, kind="weekly", meta=sel.metadata())
    assert store.batch(WEEK).meta["duplicate_id_rows"] == 2


def test_ids_the_store_cannot_hold_are_left_out_and_counted() -> None:
    rows = [{"interaction_id": iid, "ts": "2026-11-16T09:00:00Z", "messages": [{"role": "user", "content": f"q {words(k)}"}],
             "input_text": "", "output": "a", "signal": "negative", "weight": 2.0, "confidence": None}
            for k, iid in enumerate(["ok-1", "x" * (MAX_ID_CHARS + 1), "nul\x00id", "", None, "x" * MAX_ID_CHARS])]
    sel = select_batch(WEEK, rows, cfg(20))
    assert sorted(it["item_id"] for it in sel.items) == ["ok-1", "x" * MAX_ID_CHARS]
    assert sel.unusable_id_rows == 4
