"""The `automation` section: schedules, the metric-drop rule, alerts."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from flywheel.config.base import StrictModel
from flywheel.core.cron import parse_cron


class AutomationConfig(StrictModel):
    timezone: str = "UTC"
    capture_cron: str = "15 0 * * *"
    labeling_cron: str = "0 7 * * 1"
    retrain_cron: str = "0 3 1 1,4,7,10 *"
    negative_rate_threshold: float = Field(0.35, ge=0, le=1)
    negative_rate_rise: float = Field(0.1, ge=0, le=1)
    retrain_cooldown_days: int = Field(7, ge=0)
    metric_window_days: int = Field(7, gt=0, description="the live negative-signal rate is measured over this many days")
    metric_baseline_days: int = Field(14, gt=0, description="the champion's first days after promotion, the baseline for negative_rate_rise")
    metric_min_interactions: int = Field(50, ge=1, description="no metric-drop decision on fewer interactions than this")
    alert_webhook_env: str = Field("FLYWHEEL_ALERT_WEBHOOK", description="name of the env var holding the failure-alert webhook URL")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as UTC or Europe/Paris") from None
        return value

    @field_validator("capture_cron", "labeling_cron", "retrain_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        parse_cron(value)
        return value
