"""The single Dagster Definitions root of the flywheel code location."""

import dagster as dg

import schedules
from assets import capture, dataset, evaluation, labeling, training
from assets.resources import FlywheelResource
from jobs import ALL_JOBS

_ASSET_MODULES = [capture, labeling, dataset, training, evaluation]

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(_ASSET_MODULES),
    asset_checks=dg.load_asset_checks_from_modules(_ASSET_MODULES),
    jobs=ALL_JOBS,
    schedules=getattr(schedules, "ALL_SCHEDULES", []),
    sensors=getattr(schedules, "ALL_SENSORS", []),
    resources={"flywheel": FlywheelResource()},
)
