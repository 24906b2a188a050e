"""Training assets: the LoRA adapter trained on the newest dataset version, run through Dagster Pipes."""

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg

import flywheel
from assets.metadata import png_metadata, svg_metadata
from assets.resources import FlywheelResource
from flywheel.core.markdown import markdown_cell, markdown_table
from flywheel.evaluation.eval_set import EVAL_SET
from flywheel.training.curves import loss_curve_svg
from flywheel.training.request import TrainingRequest, latest_dataset_version
from flywheel.training.trainer import LOSS_PNG

REPO_ROOT = Path(flywheel.__file__).resolve().parents[1]


def hyperparameters_markdown(cfg: dict[str, Any]) -> str:
    """The training recipe as a two-column table, numbers rounded for reading (training_config.json)."""
    lora = cfg.get("lora") or {}
    targets = lora.get("target_modules")
    rows = [
        ("learning rate", cfg.get("learning_rate")),
        ("epochs", cfg.get("epochs")),
        ("max steps", cfg.get("max_steps") or "all epochs"),
        ("batch size", f"{cfg.get('batch_size')} x {cfg.get('gradient_accumulation_steps', 1)} accumulation"),
        ("max length", cfg.get("max_length")),
        ("seed", cfg.get("seed")),
        ("LoRA r / alpha / dropout", f"{lora.get('r')} / {lora.get('alpha')} / {markdown_cell(lora.get('dropout'))}"),
        ("LoRA target modules", ", ".join(targets) if isinstance(targets, list) else targets),
        ("validation share", cfg.get("validation_share")),
        ("early stopping patience", cfg.get("early_stopping_patience") or "off"),
    ]
    return markdown_table(["hyperparameter", "value"],
                          [(k, int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in rows])


def training_facts(model_path: Path) -> dict[str, Any]:
    """What a person looks for on `lora_adapter` beside the Pipes metadata: the recipe, the base model,
    the validation split, loss per epoch, early stopping and the plots (read from the model folder)."""
    manifest = json.loads((model_path / "manifest.json").read_text(encoding="utf-8"))
    cfg = json.loads((model_path / "training_config.json").read_text(encoding="utf-8"))
    validation = manifest.get("validation") or {}
    stopping = manifest.get("early_stopping")
    epochs = manifest.get("epochs") or []
    val_loss = (manifest.get("metrics") or {}).get("val_loss")
    facts: dict[str, Any] = {
        "hyperparameters": dg.MetadataValue.md(hyperparameters_markdown(cfg)),
        "base_model": manifest.get("base_model", ""),
        "base_model_path": dg.MetadataValue.path(manifest.get("base_model_resolved", "")),
        "validation": (f"{validation['examples']} examples held out of the training data ({validation['rows']} rows; "
                       f"{validation['fit_rows']} rows trained)" if validation.get("examples")
                       else f"none: {validation.get('skipped') or 'not recorded'}"),
        "val_loss": dg.MetadataValue.float(float(val_loss)) if val_loss is not None else dg.MetadataValue.null(),
        "loss_by_epoch": dg.MetadataValue.table(
            [dg.TableRecord({k: r[k] for k in ("epoch", "step", "train_loss", "val_loss") if r.get(k) is not None})
             for r in epochs],
            schema=dg.TableSchema(columns=[dg.TableColumn("epoch", "float"), dg.TableColumn("step", "int"),
                                           dg.TableColumn("train_loss", "float"), dg.TableColumn("val_loss", "float")])),
        "early_stopping": ("off" if not stopping else
                           f"patience {stopping['patience']}: " + (
                               f"stopped early; kept the adapter of step {stopping['best_step']} "
                               f"(validation loss {stopping['best_val_loss']:.4f})" if stopping["stopped_early"]
                               else "ran every epoch")),
        "loss_curve_inline": svg_metadata(loss_curve_svg(manifest.get("loss_curve") or [], manifest.get("val_curve") or []),
                                          "loss curve (blue: training, orange: validation)"),
        "loss_curve_plot": png_metadata(model_path / LOSS_PNG, "loss curve"),
    }
    tracking = manifest.get("tracking") or {}
    if tracking.get("mlflow_run_id"):
        facts["mlflow_run_id"] = tracking["mlflow_run_id"]
    return facts


def training_command(request: TrainingRequest) -> list[str]:
    """`python -m flywheel.training CONFIG_JSON`: the same entry point a GPU pod runs."""
    return [sys.executable, "-m", "flywheel.training", request.model_dump_json()]


@dg.asset(
    group_name="training",
    kinds={"python", "pytorch"},
    deps=["training_dataset", "fixed_eval_set"],
    tags={"flywheel/gpu": "optional"},
)
def lora_adapter(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """LoRA SFT (peft + trl) of the configured base model on the newest `training_dataset` version.

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
    request = TrainingRequest(
        home=str(home.root),
        training=project.training,
        dataset_version=latest_dataset_version(home),
        eval_set_path=str(eval_path),
        seed_replicates=project.evaluation.seed_replicates,
        leak_rule=project.curation,
    )
    client = dg.PipesSubprocessClient(
        cwd=str(REPO_ROOT), env={"PYTHONPATH": str(REPO_ROOT), "TOKENIZERS_PARALLELISM": "false"}
    )
    invocation = client.run(context=context, command=training_command(request))
    result = invocation.get_materialize_result()
    metadata = dict(result.metadata or {})
    path_value = metadata.get("path")
    model_path = Path(str(path_value.value if isinstance(path_value, dg.MetadataValue) else path_value))
    metadata.update(training_facts(model_path))
    return dg.MaterializeResult(metadata=metadata, data_version=result.data_version)
