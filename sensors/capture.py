"""The landing sensor: new completed files in the landing zone start that day's `daily_capture` run."""

from __future__ import annotations

import json

import dagster as dg

from assets.materializations import latest_partition_metadata
from assets.partitions import daily_partitions
from assets.resources import FlywheelResource
from flywheel.capture.landing import days_to_capture, recover_orphans
from flywheel.capture.signals import SIGNALS
from jobs import daily_capture


@dg.sensor(
    name="capture_landing_sensor",
    job=daily_capture,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs daily_capture for a day when its landing files (or the next day's) change.",
)
def capture_landing_sensor(context: dg.SensorEvaluationContext, flywheel: FlywheelResource) -> dg.SensorResult:
    """The cursor maps each day to a fingerprint of the files its run reads (the day's and the next
    day's interactions and feedback); a new file changes the fingerprint, so the day runs again with
    a new run_key. Days that are not partitions yet (today, before the start) wait for a later tick.
    A day whose latest `interaction_signals` materialization already read these very inputs (a manual
    run, a backfill, the demo) is marked seen without a new run.

    A day is marked seen when its run is requested, whatever the run's outcome: a run that failed is
    requested again as soon as its inputs change (a file added, or fixed in place: the fingerprint
    holds each file's size and modification time), not for the same files. First, landing files a
    killed writer left behind are published (`recover_orphans`), which changes their days' inputs."""
    home = flywheel.home()
    orphans = recover_orphans(home, flywheel.project().capture.orphan_tmp_after_s)
    if orphans.recovered or orphans.removed_empty:
        context.log.warning(f"{orphans.summary()}: {[str(p.relative_to(home.root)) for p in orphans.recovered]}")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    last = daily_partitions.get_last_partition_key()
    first = daily_partitions.get_first_partition_key()
    requests = []
    for day, fingerprint in sorted(days_to_capture(home, seen).items()):
        if last is None or first is None or not first <= day <= last:
            continue
        done = latest_partition_metadata(context.instance, dg.AssetKey(SIGNALS), day).get("input_fingerprint")
        if done != fingerprint:
            requests.append(
                dg.RunRequest(run_key=f"capture:{day}:{fingerprint}", partition_key=day, tags={"flywheel/trigger": "landing"})
            )
        seen[day] = fingerprint
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))


SENSORS = [capture_landing_sensor]
