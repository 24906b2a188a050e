"""Quarter arithmetic and the per-quarter retrain records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel.core.errors import InputError
from flywheel.core.quarters import (
    all_quarters,
    closed_quarter,
    current_quarter,
    newest_quarter,
    next_quarter,
    parse_quarter,
    previous_quarter,
    quarter_cutoff,
    quarter_key,
    quarter_label,
    quarters_between,
    read_quarter,
    update_quarter,
)
from flywheel.core.storage import FlywheelHome

days = st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31))


@given(days)
def test_a_day_lies_in_its_quarter(day: date) -> None:
    key = quarter_key(day)
    start = date.fromisoformat(key)
    assert start <= day < quarter_cutoff(key).date()
    assert start.day == 1 and start.month in (1, 4, 7, 10)
    assert parse_quarter(quarter_label(key)) == key == parse_quarter(day.isoformat())
    assert previous_quarter(next_quarter(key)) == key


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_the_schedule_retrains_the_quarter_before_the_current_one(at: datetime) -> None:
    assert closed_quarter(at) == previous_quarter(current_quarter(at))
    assert quarter_cutoff(closed_quarter(at)) <= at


@given(st.text(max_size=20))
def test_parse_quarter_accepts_a_quarter_or_refuses_with_the_expected_forms(text: str) -> None:
    try:
        key = parse_quarter(text)
    except InputError as exc:
        assert "YYYY-Qn" in str(exc)
    else:
        assert date.fromisoformat(key).day == 1


def test_examples() -> None:
    assert quarter_label("2026-10-01") == "2026-Q4" and parse_quarter("2026-q2") == "2026-04-01"
    assert next_quarter("2026-10-01") == "2027-01-01" and previous_quarter("2026-01-01") == "2025-10-01"
    assert closed_quarter(datetime(2026, 10, 1, 3, tzinfo=UTC)) == "2026-07-01"
    assert current_quarter(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == "2026-10-01"
    assert quarters_between("2025-Q4", "2026-05-20") == ["2025-10-01", "2026-01-01", "2026-04-01"]
    with pytest.raises(InputError, match="is before"):
        quarters_between("2026-Q2", "2026-Q1")
    assert quarter_cutoff("2026-Q4") == datetime(2027, 1, 1, tzinfo=UTC)
    assert quarter_cutoff("2026-Q4") - timedelta(days=92) == datetime(2026, 10, 1, tzinfo=UTC)


def test_records_follow_the_chain(tmp_path) -> None:
    home = FlywheelHome(tmp_path)
    assert read_quarter(home, "2026-Q3") == {} and newest_quarter(home) is None
    update_quarter(home, "2026-Q3", dataset_version="d1")
    update_quarter(home, "2026-Q3", model_version="m1")
    update_quarter(home, "2026-Q3", outcome="held", score=0.5)
    assert read_quarter(home, "2026-07-01") == {"quarter": "2026-07-01", "label": "2026-Q3", "dataset_version": "d1",
                                                "model_version": "m1", "outcome": "held", "score": 0.5}
    update_quarter(home, "2026-Q3", model_version="m2")  # a new model: the old verdict no longer applies
    assert "outcome" not in read_quarter(home, "2026-Q3") and read_quarter(home, "2026-Q3")["dataset_version"] == "d1"
    update_quarter(home, "2026-Q3", dataset_version="d2")  # a new dataset: nothing trained on it yet
    assert "model_version" not in read_quarter(home, "2026-Q3")
    update_quarter(home, "2026-Q1", outcome="held")  # no dataset: not a retrained quarter
    assert newest_quarter(home) == "2026-07-01"
    assert [r["label"] for r in all_quarters(home)] == ["2026-Q1", "2026-Q3"]
    home.path("retrain", "2026-10-01.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not JSON"):
        read_quarter(home, "2026-Q4")
