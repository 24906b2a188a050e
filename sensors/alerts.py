"""Run-failure alerts: every failed run is logged and, when a webhook is configured, POSTed as JSON.

The webhook URL is read at tick time from the environment variable named by
`automation.alert_webhook_env` (default `FLYWHEEL_ALERT_WEBHOOK`); unset means log only.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

from assets.resources import FlywheelResource
from flywheel.ops.monitoring import FailureAlert, post_alert

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo


def root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error of a chain: the user's exception (`Type: message`), not Dagster's wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def failure_alert(context: dg.RunFailureSensorContext) -> FailureAlert:
    """The alert for a failed run: job, run id, partition, the failure message and the run's tags."""
    run = context.dagster_run
    error = context.failure_event.message or "run failed"
    step_errors = [
        f"{e.step_key}: {root_cause(e.event_specific_data.error)}"  # type: ignore[union-attr]
        for e in context.get_step_failure_events()
        if getattr(e.event_specific_data, "error", None) is not None
    ]
    if step_errors:
        error = f"{error} | " + " | ".join(step_errors)
    return FailureAlert(
        job=run.job_name,
        run_id=run.run_id,
        error=error[:2000],
        partition=run.tags.get("dagster/partition"),
        tags={k: v for k, v in run.tags.items() if k.startswith(("flywheel/", "dagster/partition", "dagster/schedule", "dagster/sensor"))},
        failed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@dg.run_failure_sensor(
    name="run_failure_alert",
    monitor_all_code_locations=False,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Log every failed run and POST it as JSON to the webhook in $FLYWHEEL_ALERT_WEBHOOK "
    "(the variable named by automation.alert_webhook_env), if set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, flywheel: FlywheelResource) -> None:
    alert = failure_alert(context)
    context.log.error(alert.text())
    url = os.environ.get(flywheel.project().automation.alert_webhook_env)
    if url:
        status = post_alert(url, alert)
        context.log.info(f"alert posted to the webhook: HTTP {status}")


SENSORS = [run_failure_alert]
