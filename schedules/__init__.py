"""Calendar schedules (daily capture, weekly labeling, quarterly retrain); sensors live in `sensors/`."""

from __future__ import annotations

import dagster as dg

from schedules import calendar

ALL_SCHEDULES: list[dg.ScheduleDefinition] = [*calendar.SCHEDULES]
