"""Retention of the landing zone: a day's landing files (the only place raw user ids live) are deleted
once they are `capture.retention_days` old and their day has been captured (off by default).

A day's landing files are read by the capture of that day and, for the resubmission window and late
feedback, by the capture of the day before. They count as captured when the day's `interactions` and
`interaction_signals` tables, and the previous day's signals (when that day has traffic), were
written after the newest of them: a file that arrived after its day's capture is kept until the day is
captured again, and so is a day whose previous day still waits for its capture. Day names are UTC days; a day is past retention when it is before
`today - retention_days`. In-progress `.tmp` files are never deleted (capture publishes the orphans).

On object storage the modification times are the objects' `LastModified` (set by the store, to the
second; a landing file and a capture output of the same second count as captured) and a day's folder
goes with its last object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flywheel.capture.landing import landing_days, landing_files
from flywheel.capture.records import FEEDBACK, INTERACTIONS, previous_day
from flywheel.capture.signals import SIGNALS
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome, StoragePath, remove


@dataclass
class RetentionReport:
    """Landing days past retention: those deleted, and those kept with the reason."""

    cutoff: str | None  # days before this one are past retention; None: retention is off
    deleted_days: list[str] = field(default_factory=list)
    deleted_files: int = 0
    deleted_bytes: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # day past retention -> why its files are still there


def retention_cutoff(config: CaptureConfig, today: date | None = None) -> str | None:
    """The first day (`YYYY-MM-DD`) still within retention; None when `capture.retention_days` is off."""
    if config.retention_days is None:
        return None
    today = today or datetime.now(UTC).date()
    return (today - timedelta(days=config.retention_days)).isoformat()


def _day_files(home: FlywheelHome, day: str) -> list[StoragePath]:
    return [*landing_files(home, INTERACTIONS, day), *landing_files(home, FEEDBACK, day)]


def _mtime(path: StoragePath) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def capture_pending(home: FlywheelHome, day: str, files: list[StoragePath]) -> str | None:
    """Why `day`'s landing `files` may not be deleted yet (None: every capture that reads them is done)."""
    if not files:
        return None
    newest = max((p.stat().st_mtime for p in files), default=0.0)
    readers = [("interactions", home.warehouse(INTERACTIONS, day)), ("interaction_signals", home.warehouse(SIGNALS, day))]
    before = previous_day(day)
    if landing_files(home, INTERACTIONS, before) or home.warehouse(INTERACTIONS, before).exists():
        readers.append((f"{before}'s interaction_signals", home.warehouse(SIGNALS, before)))
    for name, path in readers:
        written = _mtime(path)
        if written is None:
            return f"not captured yet ({name} missing)"
        if written < newest:
            return f"landing files changed after the capture ({name} is older than them)"
    return None


def past_retention(
    home: FlywheelHome, config: CaptureConfig, today: date | None = None
) -> dict[str, list[StoragePath]]:
    """{day: its completed landing files} of the days before the retention cutoff that still have some."""
    cutoff = retention_cutoff(config, today)
    if cutoff is None:
        return {}
    days = sorted(set(landing_days(home, INTERACTIONS)) | set(landing_days(home, FEEDBACK)))
    found = {day: _day_files(home, day) for day in days if day < cutoff}
    return {day: files for day, files in found.items() if files}


def apply_retention(home: FlywheelHome, config: CaptureConfig, today: date | None = None) -> RetentionReport:
    """Delete the landing files of every day past retention whose captures are done (see the module);
    report the days kept and why. Empty day folders are removed."""
    report = RetentionReport(retention_cutoff(config, today))
    for day, files in past_retention(home, config, today).items():
        reason = capture_pending(home, day, files)
        if reason is None and previous_day(day) in report.kept:  # its capture will read this day again
            reason = f"{previous_day(day)} is not captured yet and reads this day's files"
        if reason is not None:
            report.kept[day] = reason
            continue
        for path in files:
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            report.deleted_files += 1
            report.deleted_bytes += size
        for stream in (INTERACTIONS, FEEDBACK):
            folder = home.landing(stream, day)
            if folder.is_dir() and not any(folder.iterdir()):
                remove(folder)  # on object storage: a folder marker object, if the store keeps one
        report.deleted_days.append(day)
    return report
