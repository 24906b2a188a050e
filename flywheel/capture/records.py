"""The capture records: their streams, feedback kinds, the error a bad row raises, and UTC timestamps.

Standard library only: the serving-side SDK (`flywheel.capture.sdk`) imports this module.
A record's `ts` is an RFC 3339 string with an offset, or epoch seconds; it is stored as UTC
microseconds, and its UTC day names the landing folder (`landing/<stream>/YYYY-MM-DD/`).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flywheel.core.errors import InputError

INTERACTIONS = "interactions"
FEEDBACK = "feedback"
FEEDBACK_KINDS: tuple[str, ...] = ("copy", "resubmit", "correction", "thumbs_up", "thumbs_down")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MIN_TS_US = 0
_MAX_TS_US = int((datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH) / _ONE_US)


class RowError(InputError):
    """A row that cannot be accepted: `reason` is a short code, the message says what and where."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- timestamps ------------------------------------------------------------------------------------
def parse_ts_us(value: Any, field_name: str = "ts") -> int:
    """Epoch microseconds (UTC) of an RFC 3339 string with an offset, or of epoch seconds."""
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise RowError("bad_timestamp", f"{field_name}: not RFC 3339: {value[:64]!r}") from None
        if dt.tzinfo is None:
            raise RowError("bad_timestamp", f"{field_name}: no UTC offset in {value[:64]!r}")
        us = (dt - _EPOCH) // _ONE_US
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise RowError("bad_timestamp", f"{field_name}: not a finite number: {value!r}")
        if not _MIN_TS_US <= value * 1_000_000 < _MAX_TS_US:  # checked before round(): 1e303 * 1e6 is inf
            raise RowError("bad_timestamp", f"{field_name}: {str(value)[:32]} is outside 1970-2099")
        us = round(value * 1_000_000)
    elif value is None:
        raise RowError("missing_field", f"{field_name}: missing")
    else:
        raise RowError(
            "bad_timestamp",
            f"{field_name}: expected an RFC 3339 string or epoch seconds, got {type(value).__name__}",
        )
    if not _MIN_TS_US <= us < _MAX_TS_US:
        raise RowError("bad_timestamp", f"{field_name}: {str(value)[:64]!r} is outside 1970-2099")
    return us


def format_ts(ts: datetime | float | str | None = None) -> str:
    """An RFC 3339 UTC string (`...Z`, microseconds) for a datetime, epoch seconds, or now."""
    if ts is None:
        dt = datetime.now(UTC)
    elif isinstance(ts, datetime):
        dt = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    elif isinstance(ts, str):
        dt = _EPOCH + parse_ts_us(ts) * _ONE_US
    else:
        dt = _EPOCH + timedelta(seconds=float(ts))
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_of(ts_text: str) -> str:
    """The UTC day (`YYYY-MM-DD`) of an RFC 3339 string."""
    return (_EPOCH + parse_ts_us(ts_text) * _ONE_US).date().isoformat()


def day_of_us(us: int) -> str:
    """The UTC day (`YYYY-MM-DD`) of epoch microseconds."""
    return (_EPOCH + us * _ONE_US).date().isoformat()


def next_day(day: str) -> str:
    """The day after `day` (`YYYY-MM-DD`)."""
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def previous_day(day: str) -> str:
    """The day before `day` (`YYYY-MM-DD`)."""
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def day_start_us(day: str) -> int:
    """Epoch microseconds of `day`'s first instant (00:00 UTC)."""
    return (datetime.fromisoformat(day).replace(tzinfo=UTC) - _EPOCH) // _ONE_US
