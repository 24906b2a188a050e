"""Schedules and sensors, one module per concern; this package collects them for definitions.py.

`calendar`: the daily / weekly / quarterly schedules; `capture`: the landing sensor; `labeling`: the
review-complete sensor; `retrain`: the metric-drop sensor; `alerts`: the run-failure alert.
"""

from __future__ import annotations

import dagster as dg

from schedules import alerts, calendar, capture, labeling, retrain

ALL_SCHEDULES: list[dg.ScheduleDefinition] = [*calendar.SCHEDULES]
ALL_SENSORS: list[dg.SensorDefinition] = [*capture.SENSORS, *labeling.SENSORS, *retrain.SENSORS, *alerts.SENSORS]
