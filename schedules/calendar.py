"""Calendar schedules: daily capture, weekly labeling (Monday morning), quarterly retrain.

Times and the time zone come from `AutomationConfig` (the `automation:` section of flywheel.yaml) of
the project the code location is built for (`assets.partitions.CODE_LOCATION_PROJECT`: Dagster needs a
schedule's cron and time zone when the code location loads, like the partitions' start date).

Partition keys stay UTC whatever the time zone: a tick picks the last *complete* UTC day (capture), the
last complete Monday-to-Sunday week (labeling) or the quarter that just closed (retrain) at its scheduled
time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.partitions import CODE_LOCATION_PROJECT
from flywheel.config import AutomationConfig
from flywheel.core.quarters import closed_quarter, quarter_label
from flywheel.ops.monitoring import week_monday
from jobs import daily_capture, retrain, weekly_labeling


def last_complete_day(at: datetime) -> str:
    """The UTC day that ended most recently before `at`."""
    return (at.astimezone(UTC) - timedelta(days=1)).date().isoformat()


def last_complete_week(at: datetime) -> str:
    """The Monday key of the last complete UTC week before `at`."""
    return (week_monday(at.astimezone(UTC).date()) - timedelta(days=7)).isoformat()


def build_calendar_schedules(automation: AutomationConfig) -> list[dg.ScheduleDefinition]:
    """The three calendar schedules for the given `automation` settings."""
    tz = automation.timezone

    @dg.schedule(
        name="daily_capture_schedule",
        cron_schedule=automation.capture_cron,
        execution_timezone=tz,
        job=daily_capture,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Capture the day that just ended (UTC). Off by default: the landing sensor is the primary path.",
    )
    def daily_capture_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = last_complete_day(context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"capture:{day}", partition_key=day, tags={"flywheel/trigger": "schedule"})

    @dg.schedule(
        name="weekly_labeling_schedule",
        cron_schedule=automation.labeling_cron,
        execution_timezone=tz,
        job=weekly_labeling,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Monday morning: select the review batch of the week that just ended.",
    )
    def weekly_labeling_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        week = last_complete_week(context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"labeling:{week}", partition_key=week, tags={"flywheel/trigger": "schedule"})

    @dg.schedule(
        name="quarterly_retrain_schedule",
        cron_schedule=automation.retrain_cron,
        execution_timezone=tz,
        job=retrain,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="First day of each quarter: retrain the quarter that just closed (dataset, adapter, "
        "evaluation, gate, promotion).",
    )
    def quarterly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        quarter = closed_quarter(context.scheduled_execution_time)
        return dg.RunRequest(
            run_key=f"retrain:{quarter}", partition_key=quarter,
            tags={"flywheel/trigger": "schedule", "flywheel/reason": f"quarterly retrain {quarter_label(quarter)}"},
        )

    return [daily_capture_schedule, weekly_labeling_schedule, quarterly_retrain_schedule]


SCHEDULES = build_calendar_schedules(CODE_LOCATION_PROJECT.automation)
