"""Schedules and sensors, one module per concern; this package collects them for definitions.py.

Each module (`capture`, `labeling`, `retrain`, `alerts`) may export `SCHEDULES` and `SENSORS` lists;
a module that does not exist yet is skipped.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import dagster as dg

_MODULE_NAMES = ("calendar", "capture", "labeling", "retrain", "alerts")


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            return None
        raise


_MODULES = [m for m in (_load(n) for n in _MODULE_NAMES) if m is not None]

ALL_SCHEDULES: list[dg.ScheduleDefinition] = [s for m in _MODULES for s in getattr(m, "SCHEDULES", [])]
ALL_SENSORS: list[dg.SensorDefinition] = [s for m in _MODULES for s in getattr(m, "SENSORS", [])]
