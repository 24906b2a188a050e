"""Partition definitions shared by assets, jobs and sensors, starting at the project's `start_date`.

The code location is built for one project (like dagster-dbt's assets are built from a dbt manifest):
when it loads, the project file named by FLYWHEEL_PROJECT (else the working directory's flywheel.yaml,
else the defaults) gives the first day of the daily partitions, the Monday of the first weekly one and the
first quarter of the retrain chain's quarterly partitions.
Runs read the project again through `FlywheelResource`, from the same place.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from flywheel.config import ProjectConfig
from flywheel.core.quarters import QUARTER_CRON, quarter_key
from flywheel.project import load_project_or_defaults


def first_monday(start: date) -> date:
    """The Monday of `start`'s week: the key of the first weekly partition."""
    return start - timedelta(days=start.weekday())


def daily_partitions_for(project: ProjectConfig) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=project.start_date)


def weekly_partitions_for(project: ProjectConfig) -> dg.WeeklyPartitionsDefinition:
    # weeks start on Monday (day_offset=1); the key is the Monday's date
    monday = first_monday(date.fromisoformat(project.start_date))
    return dg.WeeklyPartitionsDefinition(start_date=monday.isoformat(), day_offset=1)


def quarterly_partitions_for(project: ProjectConfig) -> dg.TimeWindowPartitionsDefinition:
    """The retrain chain's quarters, keyed by their first day (`2026-10-01` is 2026-Q4), from the quarter of
    `start_date`. The current quarter is a partition while it is still open (end_offset=1): a metric-drop
    retrain materializes it; the quarterly schedule materializes the quarter that just closed."""
    start = quarter_key(date.fromisoformat(project.start_date))
    return dg.TimeWindowPartitionsDefinition(cron_schedule=QUARTER_CRON, start=start, fmt="%Y-%m-%d", end_offset=1)


CODE_LOCATION_PROJECT = load_project_or_defaults()
daily_partitions = daily_partitions_for(CODE_LOCATION_PROJECT)
weekly_partitions = weekly_partitions_for(CODE_LOCATION_PROJECT)
quarterly_partitions = quarterly_partitions_for(CODE_LOCATION_PROJECT)
