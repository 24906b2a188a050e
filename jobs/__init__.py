"""Asset jobs: daily_capture, weekly_labeling, weekly_reviewed_examples, source_admission, retrain (quarterly).

Each job's partitions are those of its assets (daily, weekly, the retrain chain's quarters).
"""

import dagster as dg

from assets.partitions import CODE_LOCATION_PROJECT
from flywheel.training.pod_spec import retrain_run_tags

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
    description="Read a day's landing files: interactions (validated, PII-redacted) and their signals.",
)

weekly_labeling = dg.define_asset_job(
    "weekly_labeling",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.assets("labeling_batch"),
    description="Select the week's review batch: corrections, negatives, low-confidence, a control sample.",
)

weekly_reviewed_examples = dg.define_asset_job(
    "weekly_reviewed_examples",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.assets("reviewed_examples"),
    description="Turn a completed review batch into training examples.",
)

# The retrain run's tags, built from the project's `training.pod` (flywheel/training/pod_spec.py): with
# `launcher: subprocess` they ask the K8s run launcher (dagster-k8s) for a GPU run pod, where the training
# subprocess (Dagster Pipes) runs; with `launcher: k8s` the run pod stays small and training gets a GPU pod
# of its own. `flywheel/gpu` lets the run queue hold one retrain at a time; `training.device_tags` are laid
# over. Ignored when runs execute locally (`make ui`, `flywheel demo`); see docs/deploy.md.
RETRAIN_RUN_TAGS: dict[str, str] = retrain_run_tags(CODE_LOCATION_PROJECT.training)

retrain = dg.define_asset_job(
    "retrain",
    executor_def=RUN_EXECUTOR,
    selection=dg.AssetSelection.groups("curation", "training", "evaluation"),
    description="One quarter: dataset (what was captured and reviewed before the quarter's end) -> LoRA adapter -> "
    "evaluation on the fixed set -> gate -> promotion (the newest quarter only; a backfill of past quarters scores "
    "them and leaves the champion alone).",
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
