"""Labels complete -> reviewed examples: a sensor over the decision store."""


from collections.abc import Iterator

import dagster as dg

from assets.materializations import latest_partition_metadata
from assets.resources import FlywheelResource
from flywheel.labeling.candidates import week_days
from flywheel.labeling.store import BatchProgress, ReviewStore
from jobs import weekly_reviewed_examples


def completion_run_key(batch_id: str, progress: BatchProgress) -> str:
    """One run per completion state: a later change of mind (or a close) gives a new key."""
    return f"reviewed:{batch_id}:{progress.completion_key}"


@dg.sensor(
    job=weekly_reviewed_examples,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Start weekly_reviewed_examples for a week whose batch is complete (every item decided, or closed by hand).",
)
def review_complete_sensor(context: dg.SensorEvaluationContext, flywheel: FlywheelResource) -> Iterator[dg.RunRequest | dg.SkipReason]:
    store = ReviewStore(flywheel.db_url())
    requested = 0
    for batch_id in store.batch_ids(kind="weekly"):
        try:
            week_days(batch_id)
        except ValueError:
            context.log.warning(f"batch {batch_id!r} is not a weekly partition key; skipped")
            continue
        progress = store.progress(batch_id)
        if not progress.complete:
            continue
        built = latest_partition_metadata(context.instance, dg.AssetKey("reviewed_examples"), batch_id)
        if built.get("completion_key") == progress.completion_key:
            continue  # already built from exactly these decisions (by an earlier run, a backfill or the demo)
        requested += 1
        yield dg.RunRequest(
            run_key=completion_run_key(batch_id, progress),
            partition_key=batch_id,
            tags={"flywheel/batch": batch_id, "flywheel/batch_state": progress.state},
        )
    if not requested:
        yield dg.SkipReason("no complete review batch waiting to be turned into examples")


SENSORS = [review_complete_sensor]
