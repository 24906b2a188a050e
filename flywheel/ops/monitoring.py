"""Live metrics of the deployed model and the decisions they drive (retrain, alerts).

The live metric is the *negative-signal rate*: the share of captured interactions whose signal
(`warehouse/interaction_signals/<day>.parquet`) is `negative` or `correction` (the user resubmitted,
rated it down, or rewrote the answer). A retrain is due when, over the last `metric_window_days`:
- the rate exceeds `automation.negative_rate_threshold`, or
- it rose by more than `automation.negative_rate_rise` against the champion's first weeks
  (`metric_baseline_days` after the champion's `promoted_at`),
and at least `metric_min_interactions` interactions were seen, and the last triggered retrain is
older than `retrain_cooldown_days`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flywheel.capture.signals import SIGNALS as SIGNALS_ASSET
from flywheel.config import AutomationConfig
from flywheel.core.storage import FlywheelHome, duckdb_connection

log = logging.getLogger(__name__)

NEGATIVE_SIGNALS = ("negative", "correction")


@dataclass(frozen=True)
class RateWindow:
    """The negative-signal rate over `[start, end)`."""

    start: datetime
    end: datetime
    interactions: int
    negatives: int

    @property
    def rate(self) -> float | None:
        return self.negatives / self.interactions if self.interactions else None

    def describe(self) -> str:
        rate = "n/a" if self.rate is None else f"{self.rate:.1%}"
        return f"{rate} ({self.negatives}/{self.interactions}) {self.start:%Y-%m-%d}..{(self.end - timedelta(seconds=1)):%Y-%m-%d}"


@dataclass(frozen=True)
class RetrainDecision:
    """Whether the metric-drop rule asks for a retrain, and why (the reason goes into run tags)."""

    retrain: bool
    reason: str
    current: RateWindow
    baseline: RateWindow | None

    def tags(self) -> dict[str, str]:
        tags = {"flywheel/trigger": "metric_drop", "flywheel/reason": self.reason[:255]}
        if self.current.rate is not None:
            tags["flywheel/negative_rate"] = f"{self.current.rate:.4f}"
        if self.baseline is not None and self.baseline.rate is not None:
            tags["flywheel/baseline_rate"] = f"{self.baseline.rate:.4f}"
        return tags


def _days(start: datetime, end: datetime) -> list[str]:
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def negative_rate(home: FlywheelHome, start: datetime, end: datetime) -> RateWindow:
    """Count interactions and negative signals with `start <= ts < end` (UTC) from the daily signal files."""
    start, end = _utc(start), _utc(end)
    files = home.warehouse_files(SIGNALS_ASSET, _days(start, end))
    if not files:
        return RateWindow(start, end, 0, 0)
    con = duckdb_connection(home=home)  # a home on object storage: DuckDB reads its objects through fsspec
    try:
        total, negatives = con.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE list_contains($negative, signal))
            FROM read_parquet($files)
            WHERE ts >= $start AND ts < $end
            """,
            {"files": [str(f) for f in files], "start": start, "end": end, "negative": list(NEGATIVE_SIGNALS)},
        ).fetchone()
    finally:
        con.close()
    return RateWindow(start, end, int(total), int(negatives or 0))


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def decide_retrain(
    home: FlywheelHome,
    automation: AutomationConfig,
    now: datetime,
    champion_promoted_at: datetime | None,
    last_triggered: datetime | None,
) -> RetrainDecision:
    """Apply the metric-drop rule (see the module docstring) at `now`."""
    now = _utc(now)
    current = negative_rate(home, now - timedelta(days=automation.metric_window_days), now)
    baseline = None
    if champion_promoted_at is not None:
        b_start = _utc(champion_promoted_at)
        b_end = min(b_start + timedelta(days=automation.metric_baseline_days), now)
        if b_end > b_start:
            baseline = negative_rate(home, b_start, b_end)

    def no(reason: str) -> RetrainDecision:
        return RetrainDecision(False, reason, current, baseline)

    if current.interactions < automation.metric_min_interactions:
        return no(f"only {current.interactions} interactions in the last {automation.metric_window_days} days "
                  f"(need {automation.metric_min_interactions})")
    rate = current.rate or 0.0
    reasons = []
    if rate > automation.negative_rate_threshold:
        reasons.append(f"negative-signal rate {rate:.1%} over the last {automation.metric_window_days} days "
                       f"exceeds the threshold {automation.negative_rate_threshold:.1%}")
    if (baseline is not None and baseline.rate is not None
            and baseline.interactions >= automation.metric_min_interactions
            and rate - baseline.rate > automation.negative_rate_rise):
        reasons.append(f"negative-signal rate rose from {baseline.rate:.1%} (champion's first "
                       f"{automation.metric_baseline_days} days) to {rate:.1%}, more than "
                       f"{automation.negative_rate_rise:.1%}")
    if not reasons:
        return no(f"negative-signal rate {current.describe()} is within bounds")
    if last_triggered is not None:
        cooldown_end = _utc(last_triggered) + timedelta(days=automation.retrain_cooldown_days)
        if now < cooldown_end:
            return no(f"{'; '.join(reasons)}, but a retrain was started at {last_triggered:%Y-%m-%d %H:%M} UTC "
                      f"(cooldown until {cooldown_end:%Y-%m-%d %H:%M} UTC)")
    return RetrainDecision(True, "; ".join(reasons), current, baseline)


# --- the sensor's cursor -------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricCursor:
    """What the metric-drop sensor remembers between ticks."""

    last_triggered: str | None = None  # ISO timestamp of the last retrain it started
    last_reason: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> MetricCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(last_triggered=data.get("last_triggered"), last_reason=data.get("last_reason"))

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def last_triggered_at(self) -> datetime | None:
        return datetime.fromisoformat(self.last_triggered) if self.last_triggered else None


def run_key(now: datetime) -> str:
    """One metric-drop retrain per day at most, even if the cursor were lost."""
    return f"metric_drop:{_utc(now).date().isoformat()}"


# --- alerts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FailureAlert:
    """A failed run, as posted to the alert webhook."""

    job: str
    run_id: str
    error: str
    partition: str | None = None
    tags: dict[str, str] | None = None
    failed_at: str | None = None

    def text(self) -> str:
        where = f" (partition {self.partition})" if self.partition else ""
        return f"flywheel: job '{self.job}'{where} failed, run {self.run_id}: {self.error}"

    def payload(self) -> dict[str, Any]:
        body = asdict(self)
        body["text"] = self.text()  # Slack/Mattermost-compatible
        body["source"] = "flywheel"
        return body


def post_alert(url: str, alert: FailureAlert, timeout_s: float = 5.0) -> int | None:
    """POST the alert as JSON; returns the HTTP status, or None when the webhook was unreachable
    (an unreachable webhook is logged, never raised: the failure it reports matters more)."""
    import httpx  # imported on first use: the code location starts faster

    try:
        resp = httpx.post(url, json=alert.payload(), timeout=timeout_s)
    except httpx.HTTPError as exc:
        log.error("alert webhook %s unreachable: %s", url, exc)
        return None
    if resp.status_code >= 400:
        log.error("alert webhook %s answered %s: %s", url, resp.status_code, resp.text[:200])
    return resp.status_code


def week_monday(day: date) -> date:
    """The Monday of the week holding `day` (weekly partition keys are Mondays)."""
    return day - timedelta(days=day.weekday())


def champion_promoted_at(db_url: str) -> datetime | None:
    """When the current champion was promoted (from the model registry), or None without a champion."""
    from flywheel.models.registry import current_champion

    champion = current_champion(db_url)
    if champion is None or champion.promoted_at is None:
        return None
    return _utc(champion.promoted_at)
