"""A dataset version's review batches: conflicts beside the kept answer, the review status check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.curation.review_batches import conflict_review_status, create_conflict_batch
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewError, ReviewStore


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
