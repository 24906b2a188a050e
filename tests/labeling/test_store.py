"""flywheel.labeling.store: the decision store on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from flywheel.core.errors import FlywheelError, InputError
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import (
    BatchClosedError,
    ReviewError,
    ReviewStore,
    UnknownBatchError,
    UnknownItemError,
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
