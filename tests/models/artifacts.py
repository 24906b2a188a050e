"""Model version folders for tests: real tiny LoRA adapters installed as `models/<version>/`."""

from __future__ import annotations

import shutil
from pathlib import Path

from flywheel.core.storage import FlywheelHome, write_json


def random_adapter(home: FlywheelHome, target: Path) -> Path:
    """A LoRA adapter of the tiny base model with random, non-zero weights (seeded)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from flywheel.models.base import load_base

    model, _ = load_base("tiny", home)
    torch.manual_seed(0)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=False)
    get_peft_model(model, cfg).save_pretrained(target)
    return target


def install_model(home: FlywheelHome, version: str, adapter: Path, dataset_version: str = "ds1") -> Path:
    """Copy an adapter to `models/<version>/` with a manifest and point `models/candidate.json` at it."""
    target = home.model(version)
    shutil.copytree(adapter, target, dirs_exist_ok=True)
    write_json({"version": version, "dataset_version": dataset_version, "eval_set_hash": "x", "base_model": "tiny"},
               target / "manifest.json")
    write_json({"version": version, "path": str(target)}, home.model("candidate.json"))
    return target
