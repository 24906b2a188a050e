"""Sensors, one module per concern: `capture` (new landing files), `labeling` (a completed review
batch), `retrain` (the live metric drops), `alerts` (a run failed)."""

from __future__ import annotations

import dagster as dg

from sensors import alerts, capture, labeling, retrain

ALL_SENSORS: list[dg.SensorDefinition] = [*capture.SENSORS, *labeling.SENSORS, *retrain.SENSORS, *alerts.SENSORS]
