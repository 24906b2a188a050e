"""What a finished training run reports beside its Pipes metadata, read from the model folder: the recipe
as a table, the base model, the validation split, loss per epoch, early stopping and the loss curve."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.core.markdown import markdown_cell, markdown_table
from flywheel.training.curves import loss_curve_svg


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


@dataclass
class TrainingReport:
    """A model folder's facts for a person: plain values and markdown, no orchestrator types."""

    hyperparameters: str
    base_model: str
    base_model_path: str
    validation: str
    val_loss: float | None
    epochs: list[dict[str, Any]] = field(default_factory=list)  # epoch, step, train_loss, val_loss
    early_stopping: str = "off"
    loss_curve_svg: str = ""
    mlflow_run_id: str | None = None


def training_report(model_path: Path) -> TrainingReport:
    """Read `manifest.json` and `training_config.json` of a trained model version."""
    manifest = json.loads((model_path / "manifest.json").read_text(encoding="utf-8"))
    cfg = json.loads((model_path / "training_config.json").read_text(encoding="utf-8"))
    validation = manifest.get("validation") or {}
    stopping = manifest.get("early_stopping")
    val_loss = (manifest.get("metrics") or {}).get("val_loss")
    return TrainingReport(
        hyperparameters=hyperparameters_markdown(cfg),
        base_model=manifest.get("base_model", ""),
        base_model_path=manifest.get("base_model_resolved", ""),
        validation=(f"{validation['examples']} examples held out of the training data ({validation['rows']} rows; "
                    f"{validation['fit_rows']} rows trained)" if validation.get("examples")
                    else f"none: {validation.get('skipped') or 'not recorded'}"),
        val_loss=float(val_loss) if val_loss is not None else None,
        epochs=[{k: r[k] for k in ("epoch", "step", "train_loss", "val_loss") if r.get(k) is not None}
                for r in manifest.get("epochs") or []],
        early_stopping=("off" if not stopping else
                        f"patience {stopping['patience']}: " + (
                            f"stopped early; kept the adapter of step {stopping['best_step']} "
                            f"(validation loss {stopping['best_val_loss']:.4f})" if stopping["stopped_early"]
                            else "ran every epoch")),
        loss_curve_svg=loss_curve_svg(manifest.get("loss_curve") or [], manifest.get("val_curve") or []),
        mlflow_run_id=(manifest.get("tracking") or {}).get("mlflow_run_id"),
    )
