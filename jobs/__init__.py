"""Asset jobs: daily_capture, weekly_labeling, retrain."""

import json

import dagster as dg

from assets.partitions import CODE_LOCATION_PROJECT, daily_partitions, weekly_partitions

daily_capture = dg.define_asset_job(
    "daily_capture",
    selection=dg.AssetSelection.groups("capture"),
    partitions_def=daily_partitions,
    description="Read a day's landing files: interactions (validated, PII-redacted) and their signals.",
)

weekly_labeling = dg.define_asset_job(
    "weekly_labeling",
    selection=dg.AssetSelection.assets("labeling_batch"),
    partitions_def=weekly_partitions,
    description="Select the week's review batch: corrections, negatives, low-confidence, a control sample.",
)

weekly_reviewed_examples = dg.define_asset_job(
    "weekly_reviewed_examples",
    selection=dg.AssetSelection.assets("reviewed_examples"),
    partitions_def=weekly_partitions,
    description="Turn a completed review batch into training examples.",
)

# The GPU request of a retrain run, read by the K8s run launcher (dagster-k8s) from the run's tags:
# the run pod gets one GPU, so the training subprocess (Dagster Pipes) runs on it. Ignored when runs
# execute locally (`dagster dev`, `flywheel demo`). The project's `training.device_tags` are laid over
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
    selection=dg.AssetSelection.groups("curation", "training", "evaluation"),
    description="Dataset -> LoRA adapter -> evaluation on the fixed set -> gate -> promotion.",
    tags=RETRAIN_RUN_TAGS,
)

source_admission = dg.define_asset_job(
    "source_admission",
    selection=dg.AssetSelection.assets("seed_examples", "synthetic_examples", "distilled_examples"),
    description="Read the example source files; a new synthetic or distilled file gets its admission sample "
    "sent for review (its rows train only once the sample passes).",
)

ALL_JOBS = [daily_capture, weekly_labeling, weekly_reviewed_examples, source_admission, retrain]
