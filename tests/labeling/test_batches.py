"""flywheel.labeling.batches: sample batches of any example source."""

from __future__ import annotations

from flywheel.core.storage import FlywheelHome
from flywheel.labeling.batches import (
    BATCH_SCHEMA,
    batch_table,
    create_sample_batch,
    load_example_source,
    review_item,
    sample_batch_results,
)
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore
from tests.shared_data import DATASETS


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


def test_review_item_of_any_source() -> None:
    prompt = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
              {"role": "user", "content": "second"}]
    item = review_item("b", "i1", 0, "sample", prompt, "answer", key="k", lineage={"row": 3}, rubric="R")
    assert set(item) == set(BATCH_SCHEMA.names)
    assert (item["input_text"], item["output"], item["input_key"], item["kind"]) == ("second", "answer", "k", "sample")
    assert item["lineage"] == '{"row": 3}' and item["interaction_id"] is None and item["signal"] == "none"
    assert batch_table([item]).num_rows == 1
