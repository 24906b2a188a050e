"""Retrain quarters: the partition keys of the retrain chain and what each quarter's retrain produced.

A quarter's key is its first day (`2026-10-01`, shown as `2026-Q4`), the key of the chain's quarterly
partitions. A quarter's retrain uses what was captured and reviewed before the quarter's end (its
cutoff, the next quarter's first day), so a backfill of a past quarter rebuilds that quarter's dataset
as it could have been built then, and the current quarter (still open) uses everything so far.

Each stage of the chain records its result for the quarter in `retrain/<key>.json` (curation: the
dataset version; training: the model version; evaluation: the verdict and score), the one place
where a stage finds what the stage before it made for the same quarter. `newest_quarter` is the latest
quarter with a dataset: only its candidate may replace the champion, so a backfill of older quarters
never does.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome, write_json

QUARTER_START_MONTHS = (1, 4, 7, 10)
QUARTER_CRON = "0 0 1 1,4,7,10 *"
"""The quarters' boundaries as a cron expression (UTC midnight of each quarter's first day)."""
_LABEL = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)


def quarter_start(day: date) -> date:
    """The first day of `day`'s quarter."""
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def quarter_key(day: date) -> str:
    """The partition key of `day`'s quarter: its first day, ISO formatted."""
    return quarter_start(day).isoformat()


def parse_quarter(text: str) -> str:
    """A quarter's key from its key (`2026-10-01`), its label (`2026-Q4`) or any day in it."""
    m = _LABEL.match(text.strip())
    if m:
        return date(int(m.group(1)), 3 * (int(m.group(2)) - 1) + 1, 1).isoformat()
    try:
        return quarter_key(date.fromisoformat(text.strip()))
    except ValueError:
        raise InputError(f"{text!r}: expected a quarter as YYYY-Qn (2026-Q4) or a day (2026-10-01)") from None


def quarter_label(key: str) -> str:
    """`2026-10-01` -> `2026-Q4`."""
    start = date.fromisoformat(parse_quarter(key))
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def next_quarter(key: str) -> str:
    start = date.fromisoformat(parse_quarter(key))
    return (date(start.year + 1, 1, 1) if start.month == 10 else date(start.year, start.month + 3, 1)).isoformat()


def previous_quarter(key: str) -> str:
    start = date.fromisoformat(parse_quarter(key))
    return (date(start.year - 1, 10, 1) if start.month == 1 else date(start.year, start.month - 3, 1)).isoformat()


def quarter_cutoff(key: str) -> datetime:
    """The end of the quarter (exclusive): UTC midnight of the next quarter's first day."""
    return datetime.combine(date.fromisoformat(next_quarter(key)), datetime.min.time(), tzinfo=UTC)


def current_quarter(at: datetime) -> str:
    """The quarter `at` falls in (UTC): what a metric-drop retrain materializes."""
    return quarter_key(at.astimezone(UTC).date())


def closed_quarter(at: datetime) -> str:
    """The quarter that ended most recently before `at` (UTC): what the quarterly schedule materializes."""
    return previous_quarter(current_quarter(at))


def quarters_between(first: str, last: str) -> list[str]:
    """Every quarter key from `first`'s quarter to `last`'s, inclusive."""
    key, end = parse_quarter(first), parse_quarter(last)
    if end < key:
        raise InputError(f"{last} is before {first}")
    keys = [key]
    while keys[-1] < end:
        keys.append(next_quarter(keys[-1]))
    return keys


# --- what each quarter's retrain produced --------------------------------------------------------
def _record_path(home: FlywheelHome, key: str) -> Any:
    return home.path("retrain", f"{parse_quarter(key)}.json")


def read_quarter(home: FlywheelHome, key: str) -> dict[str, Any]:
    """The quarter's record (empty when nothing was built for it yet)."""
    path = _record_path(home, key)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc}); delete it and re-materialize the quarter") from exc
    return data if isinstance(data, dict) else {}


def update_quarter(home: FlywheelHome, key: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the quarter's record (written atomically) and return it. A new dataset for the
    quarter clears what was trained and evaluated on the previous one."""
    key = parse_quarter(key)
    record = read_quarter(home, key)
    if "dataset_version" in fields and fields["dataset_version"] != record.get("dataset_version"):
        record = {k: v for k, v in record.items() if k in ("quarter", "label")}
    elif "model_version" in fields and fields["model_version"] != record.get("model_version"):
        record = {k: v for k, v in record.items() if k not in ("outcome", "score", "diff", "interval", "reasons")}
    record.update(quarter=key, label=quarter_label(key), **fields)
    write_json(record, _record_path(home, key))
    return record


def all_quarters(home: FlywheelHome) -> list[dict[str, Any]]:
    """Every quarter's record, oldest first."""
    folder = home.path("retrain")
    if not folder.is_dir():
        return []
    keys = sorted(p.stem for p in folder.glob("*.json") if re.match(r"^\d{4}-\d{2}-01$", p.stem))
    return [r for r in (read_quarter(home, k) for k in keys) if r]


def newest_quarter(home: FlywheelHome) -> str | None:
    """The latest quarter that has a dataset: the only one whose candidate may become the champion."""
    keys = [r["quarter"] for r in all_quarters(home) if r.get("dataset_version")]
    return max(keys) if keys else None
