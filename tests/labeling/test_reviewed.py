"""flywheel.labeling.reviewed: labels back into EXAMPLE_SCHEMA rows."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from flywheel.capture.pii import TrainingTextScrubber
from flywheel.config import PiiConfig
from flywheel.core.records import EXAMPLE_SCHEMA
from flywheel.labeling.agreement import review_stats
from flywheel.labeling.batches import create_sample_batch, scrub_items
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
    assert (
        lin["interaction_id"] == items[1]["interaction_id"]
        and lin["batch"] == WEEK
        and lin["reviewer"] == "ann"
    )
    assert rows[0]["weight"] == 3.0  # a correction's signal weight
    stats = review_stats(store.items(WEEK), store.decisions(WEEK))
    assert stats.fix_rate == pytest.approx(1 / 3) and stats.kappa is None


def test_fixed_answers_are_scrubbed_of_pii_before_they_become_examples(store: ReviewStore) -> None:
    items = small_batch(store, 3)
    record_decision(
        store, WEEK, items[0]["item_id"], "ann", "fix", text="Call Dr. Jane Smith on +44 20 7946 0958"
    )
    record_decision(store, WEEK, items[1]["item_id"], "ann", "fix", text="Write to billing@nimbus.example")
    record_decision(store, WEEK, items[2]["item_id"], "ann", "pass")
    scrubber = TrainingTextScrubber(PiiConfig(allow=["nimbus.example"], ner_models=["no_such_pipeline"]))
    rows, counts = build_reviewed_examples(WEEK, store.items(WEEK), store.decisions(WEEK), scrubber)
    answers = [r["messages"][-1]["content"] for r in rows]
    assert answers[:2] == ["Call Dr. [PERSON] on [PHONE]", "Write to billing@nimbus.example"]
    assert counts["fixed"] == 2 and scrubber.scan.hits == {"person": 1, "phone": 1} and not scrubber.scan.ner
    assert (
        store.decisions(WEEK)[0].text == "Call Dr. Jane Smith on +44 20 7946 0958"
    )  # the decision itself is kept


def test_sample_batches_and_weekly_items_are_scrubbed_with_capture_pii(store: ReviewStore) -> None:
    rows = [{"messages": [{"role": "user", "content": f"my IBAN is GB82WEST12345698765432 ({i})"},
                          {"role": "assistant", "content": "Noted, jane@example.com"}]} for i in range(3)]  # fmt: skip
    items = create_sample_batch(store, "sample-1", rows, pii=PiiConfig(ner_models=[]))
    stored = store.items("sample-1")
    assert [it["input_text"] for it in stored] == [f"my IBAN is [IBAN] ({i})" for i in range(3)]
    assert {it["output"] for it in items} == {"Noted, [EMAIL]"} and stored[0]["messages"][0][
        "content"
    ].startswith("my IBAN is [IBAN]")
    assert store.batch("sample-1").meta["pii_scan"]["hits"] == {"email": 3, "iban": 6}
    weekly = [{"messages": [{"role": "user", "content": "I'm Tom, 4111 1111 1111 1111"}], "input_text": "4111 1111 1111 1111",
               "output": "ok", "correction_text": "SSN 123-45-6789"}]  # fmt: skip
    scan = scrub_items(weekly, PiiConfig(ner_models=[]))
    assert (
        weekly[0]["input_text"] == "[CARD]"
        and weekly[0]["correction_text"] == "SSN [SSN]"
        and scan["ner"] is False
    )
