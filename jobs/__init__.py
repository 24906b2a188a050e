"""Asset jobs: daily_capture, weekly_labeling, weekly_reviewed_examples, source_admission, retrain."""

import json

import dagster as dg

from assets.partitions import CODE_LOCATION_PROJECT, daily_partitions, weekly_partitions

# Every run executes its steps one after another in the run's own process: a process per step would load
# the code location again for each (seconds apiece, minutes for a backfill of small days). Training still
# leaves the process: its asset runs `python -m flywheel.training` through Dagster Pipes (a subprocess
# locally, the run pod's GPU in a deployment). definitions.py makes it the default for asset materializations
# outside these jobs too (the UI's asset graph).
RUN_EXECUTOR = dg.in_process_executor

daily_capture = dg.define_asset_job(
    "daily_capture",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.groups("capture"),
    partitions_def=daily_partitions,
    description="Read a day's landing files: interactions (validated, PII-redacted) and their signals.",
)

weekly_labeling = dg.define_asset_job(
    "weekly_labeling",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.assets("labeling_batch"),
    partitions_def=weekly_partitions,
    description="Select the week's review batch: corrections, negatives, low-confidence, a control sample.",
)

weekly_reviewed_examples = dg.define_asset_job(
    "weekly_reviewed_examples",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.assets("reviewed_examples"),
    partitions_def=weekly_partitions,
    description="Turn a completed review batch into training examples.",
)

# The GPU request of a retrain run, read by the K8s run launcher (dagster-k8s) from the run's tags:
# the run pod gets one GPU, so the training subprocess (Dagster Pipes) runs on it. Ignored when runs
# execute locally (`make ui`, `flywheel demo`). The project's `training.device_tags` are laid over
# these (a key there replaces the default's); see docs/deploy.md.
DEFAULT_RETRAIN_RUN_TAGS: dict[str, str] = {
    "dagster-k8s/config": json.dumps(
        {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                    "limits": {"memory": "64Gi", "nvidia.com/gpu": "1"},
                }
            },
            "pod_spec_config": {
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
        sort_keys=True,
    ),
    "flywheel/gpu": "1",
}
RETRAIN_RUN_TAGS: dict[str, str] = DEFAULT_RETRAIN_RUN_TAGS | dict(CODE_LOCATION_PROJECT.training.device_tags)

retrain = dg.define_asset_job(
    "retrain",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.groups("curation", "training", "evaluation"),
    description="Dataset -> LoRA adapter -> evaluation on the fixed set -> gate -> promotion.",
    tags=RETRAIN_RUN_TAGS,
)

source_admission = dg.define_asset_job(
    "source_admission",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.assets("seed_examples", "synthetic_examples", "distilled_examples"),
    description="Read the example source files; a new synthetic or distilled file gets its admission sample "
    "sent for review (its rows train only once the sample passes).",
)

ALL_JOBS = [daily_capture, weekly_labeling, weekly_reviewed_examples, source_admission, retrain]
