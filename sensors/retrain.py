"""Metric-drop sensor: start `retrain` when the live negative-signal rate is too high or rising.

The rule lives in `flywheel.ops.monitoring.decide_retrain`; this sensor reads the project's `automation`
settings at tick time (never at import), keeps the last trigger in its cursor (cooldown), and puts
the reason in the run's tags. It retrains the current quarter (the open partition of the retrain chain).
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from assets.resources import FlywheelResource
from flywheel.core.quarters import current_quarter
from flywheel.ops.monitoring import MetricCursor, champion_promoted_at, decide_retrain, run_key
from jobs import retrain


@dg.sensor(
    name="metric_drop_sensor",
    job=retrain,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrain when the last 7 days' negative-signal rate exceeds automation.negative_rate_threshold "
    "or rises by automation.negative_rate_rise over the champion's first weeks (once per cooldown).",
)
def metric_drop_sensor(context: dg.SensorEvaluationContext, flywheel: FlywheelResource) -> dg.SensorResult:
    now = datetime.now(UTC)
    cursor = MetricCursor.parse(context.cursor)
    decision = decide_retrain(
        flywheel.home(),
        flywheel.project().automation,
        now=now,
        champion_promoted_at=champion_promoted_at(flywheel.db_url()),
        last_triggered=cursor.last_triggered_at(),
    )
    context.log.info(f"metric drop: {decision.reason} (current {decision.current.describe()})")
    if not decision.retrain:
        return dg.SensorResult(skip_reason=dg.SkipReason(decision.reason))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key(now), partition_key=current_quarter(now), tags=decision.tags())],
        cursor=MetricCursor(last_triggered=now.isoformat(), last_reason=decision.reason).dump(),
    )


SENSORS = [metric_drop_sensor]
