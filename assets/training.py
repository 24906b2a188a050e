"""Training assets: the LoRA adapter trained on the newest dataset version, run through Dagster Pipes."""

import sys
from pathlib import Path
from typing import Any

import dagster as dg

import flywheel
from assets.metadata import png_metadata, svg_metadata
from assets.partitions import quarterly_partitions
from assets.resources import FlywheelResource
from assets.training_launch import run_training
from flywheel.core.quarters import quarter_label, read_quarter, update_quarter
from flywheel.core.storage import StoragePath, storage_path
from flywheel.evaluation.eval_set import EVAL_SET
from flywheel.training.report import training_report
from flywheel.training.request import TrainingRequest
from flywheel.training.trainer import LOSS_PNG

REPO_ROOT = Path(flywheel.__file__).resolve().parents[1]


def training_facts(model_path: StoragePath) -> dict[str, Any]:
    """`flywheel.training.report.training_report` of the model folder as Dagster metadata."""
    r = training_report(model_path)
    facts: dict[str, Any] = {
        "hyperparameters": dg.MetadataValue.md(r.hyperparameters),
        "base_model": r.base_model,
        "base_model_path": dg.MetadataValue.path(r.base_model_path),
        "validation": r.validation,
        "val_loss": dg.MetadataValue.float(r.val_loss) if r.val_loss is not None else dg.MetadataValue.null(),
        "loss_by_epoch": dg.MetadataValue.table(
            [dg.TableRecord(row) for row in r.epochs],
            schema=dg.TableSchema(columns=[dg.TableColumn("epoch", "float"), dg.TableColumn("step", "int"),
                                           dg.TableColumn("train_loss", "float"), dg.TableColumn("val_loss", "float")])),
        "early_stopping": r.early_stopping,
        "loss_curve_inline": svg_metadata(r.loss_curve_svg, "loss curve (blue: training, orange: validation)"),
        "loss_curve_plot": png_metadata(model_path / LOSS_PNG, "loss curve"),
    }
    if r.mlflow_run_id:
        facts["mlflow_run_id"] = r.mlflow_run_id
    return facts


def training_command(request: TrainingRequest) -> list[str]:
    """`python -m flywheel.training CONFIG_JSON`: the same entry point a GPU pod runs."""
    return [sys.executable, "-m", "flywheel.training", request.model_dump_json()]


@dg.asset(
    group_name="training",
    kinds={"python", "pytorch"},
    deps=["training_dataset", "fixed_eval_set", "preference_pairs"],  # pairs: the optional DPO stage
    tags={"flywheel/gpu": "optional"},
    partitions_def=quarterly_partitions,
)
def lora_adapter(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """LoRA SFT (peft + trl) of the configured base model on the quarter's `training_dataset` version.

    Runs `python -m flywheel.training` through Dagster Pipes (a subprocess here, a GPU pod in a
    deployment); the process refuses eval-set leaks and empty assistant masks before training, writes
    `models/<version>/` atomically and points `models/candidate.json` at it. Metadata: version, path,
    hyperparameters, base model (name and path), the validation split, training and validation loss per
    epoch (a table, an inline chart and the PNG), early stopping, tokens/s, trained-token share."""
    project = flywheel.project()
    home = flywheel.home()
    eval_path = home.warehouse(*EVAL_SET)
    if not eval_path.is_file():
        raise dg.Failure(f"{eval_path}: the fixed eval set is missing; materialize fixed_eval_set first")
    quarter = context.partition_key
    dataset_version = read_quarter(home, quarter).get("dataset_version")
    if not dataset_version:
        raise dg.Failure(f"{quarter_label(quarter)}: no dataset version passed the blocking checks for this quarter; "
                         "materialize training_dataset for it first")
    request = TrainingRequest(
        home=str(home.root),
        training=project.training,
        dataset_version=str(dataset_version),
        eval_set_path=str(eval_path),
        seed_replicates=project.evaluation.seed_replicates,
        leak_rule=project.curation,
    )
    invocation = run_training(context, request, training_command(request), REPO_ROOT)  # assets/training_launch.py
    result = invocation.get_materialize_result()
    metadata = dict(result.metadata or {})
    path_value = metadata.get("path")
    model_path = storage_path(str(path_value.value if isinstance(path_value, dg.MetadataValue) else path_value))
    version_value = metadata.get("version")
    update_quarter(home, quarter, model_version=str(getattr(version_value, "value", version_value) or model_path.name))
    metadata.update(training_facts(model_path))
    metadata["quarter"] = quarter_label(quarter)
    return dg.MaterializeResult(metadata=metadata, data_version=result.data_version)
