"""Capture records: timestamps and the row error."""

from __future__ import annotations

import pytest

from flywheel.capture.records import RowError, parse_ts_us
from flywheel.core.errors import InputError


def test_timestamps() -> None:
    assert parse_ts_us("1970-01-01T00:00:01.5Z") == 1_500_000
    assert parse_ts_us("1970-01-01T01:00:00+01:00") == 0
    assert parse_ts_us(2) == 2_000_000


def test_a_bad_timestamp_is_a_row_error_with_its_reason() -> None:
    with pytest.raises(RowError, match="no UTC offset") as caught:
        parse_ts_us("2026-01-05T08:00:00")
    assert caught.value.reason == "bad_timestamp" and isinstance(caught.value, InputError)
    assert isinstance(caught.value, ValueError)
