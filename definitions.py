"""The single Dagster Definitions root of the flywheel code location."""

import dagster as dg

from assets import capture, curation, evaluation, generation, labeling, preference_pairs, training
from assets.resources import FlywheelResource
from jobs import ALL_JOBS, RUN_EXECUTOR
from schedules import ALL_SCHEDULES
from sensors import ALL_SENSORS

_ASSET_MODULES = [capture, labeling, generation, curation, preference_pairs, training, evaluation]

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(_ASSET_MODULES),
    asset_checks=dg.load_asset_checks_from_modules(_ASSET_MODULES),
    jobs=ALL_JOBS,
    schedules=ALL_SCHEDULES,
    sensors=ALL_SENSORS,
    resources={"flywheel": FlywheelResource()},
    executor=RUN_EXECUTOR,  # also for assets materialized outside the jobs (the UI's asset graph)
)
