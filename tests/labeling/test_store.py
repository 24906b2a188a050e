"""flywheel.labeling.store: the decision store on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from flywheel.config import LabelingConfig
from flywheel.core.errors import FlywheelError, InputError
from flywheel.core.records import MAX_ID_CHARS
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import (
    BatchClosedError,
    ReviewError,
    ReviewStore,
    UnknownBatchError,
    UnknownItemError,
    UnusableTextError,
)
from tests.labeling.traffic import WEEK, small_batch


def check_store_semantics(store: ReviewStore) -> None:
    items = small_batch(store)
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


def test_review_errors_are_input_errors() -> None:
    for cls in (ReviewError, UnknownBatchError, UnknownItemError, BatchClosedError):
        assert issubclass(cls, ReviewError) and issubclass(cls, InputError)
        assert issubclass(cls, FlywheelError) and issubclass(cls, ValueError)


def test_unknown_batch(store: ReviewStore) -> None:
    with pytest.raises(UnknownBatchError, match="not found"):
        store.batch("nope")


def check_unstorable_input_is_refused_before_the_database(store: ReviewStore) -> None:
    items = small_batch(store, 2)
    ok = dict(items[0], batch_id="b-ok", item_id="x" * MAX_ID_CHARS, interaction_id="y" * MAX_ID_CHARS)
    store.register_batch("b-ok", [ok], kind="weekly")  # exactly MAX_ID_CHARS fits the columns
    assert store.item_ids("b-ok") == ["x" * MAX_ID_CHARS]
    cases = {
        "item_id": ("x" * (MAX_ID_CHARS + 1), f"at most {MAX_ID_CHARS}"),
        "interaction_id": ("a\x00b", "NUL character"),
    }
    for key, (value, reason) in cases.items():
        with pytest.raises(ReviewError, match=f"item 0: {key} .*{reason}"):
            store.register_batch("b-bad", [dict(items[0], **{key: value})], kind="weekly")
    with pytest.raises(ReviewError, match="batch id .*at most"):
        store.register_batch("w" * 200, items, kind="weekly")
    assert not store.has_batch("b-bad") and store.batch_ids() == [WEEK, "b-ok"]
    a = items[0]["item_id"]
    for text, reason in [("fixed\x00answer", "NUL character at position 5"), ("\ud800", "lone surrogate"),
                         ("y" * 20_001, "at most 20,000")]:
        with pytest.raises(UnusableTextError, match=reason):
            record_decision(store, WEEK, a, "ann", "fix", text=text)
    with pytest.raises(UnusableTextError, match="reason .*at most 10"):
        record_decision(store, WEEK, a, "ann", "reject", reason="r" * 11, limits=LabelingConfig(max_reason_chars=10))
    with pytest.raises(UnusableTextError, match="name"):
        store.close_batch(WEEK, closed_by="n" * 200)
    assert store.decisions(WEEK) == []
    assert record_decision(store, WEEK, a, "ann", "fix", text="fixed answer").text == "fixed answer"


def test_unstorable_input_on_sqlite(store: ReviewStore) -> None:
    check_unstorable_input_is_refused_before_the_database(store)


@pytest.mark.postgres
def test_unstorable_input_on_postgres(pg_url: str) -> None:
    """Issue 11: an id over varchar(128) and a NUL in a fix reached PostgreSQL and failed there."""
    check_unstorable_input_is_refused_before_the_database(ReviewStore(pg_url))


@pytest.mark.postgres
def test_a_correction_with_nul_registers_and_its_fix_is_refused_clearly(pg_url: str) -> None:
    store = ReviewStore(pg_url)
    items = small_batch(store, 1)
    items[0]["correction_text"] = "use\x00 the export page"  # capture keeps NUL in a correction
    store.register_batch(WEEK, items, kind="weekly")  # the item's JSON escapes it
    assert store.items(WEEK)[0]["correction_text"] == "use\x00 the export page"
    with pytest.raises(UnusableTextError, match="NUL character at position 3; remove it"):
        record_decision(store, WEEK, items[0]["item_id"], "ann", "fix", text=items[0]["correction_text"])
    record_decision(store, WEEK, items[0]["item_id"], "ann", "fix", text="use the export page")
    assert store.decisions(WEEK)[0].text == "use the export page"
