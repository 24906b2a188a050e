"""flywheel.labeling.reviewed: labels back into EXAMPLE_SCHEMA rows."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from flywheel.core.records import EXAMPLE_SCHEMA
from flywheel.labeling.agreement import review_stats
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.reviewed import build_reviewed_examples
from flywheel.labeling.store import ReviewStore
from tests.labeling.traffic import WEEK, small_batch


def test_reviewed_examples_rows(store: ReviewStore) -> None:
    items = small_batch(store, 4)
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
