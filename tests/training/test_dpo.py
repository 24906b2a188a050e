"""The DPO stage on the tiny model (CPU): it continues the SFT adapter, changes it, keeps it loadable, becomes
the candidate; skipped (with the reason) when disabled or short of pairs; refuses pairs that leak eval items."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
from pathlib import Path

import pyarrow as pa
import pytest
from safetensors.torch import load_file

from flywheel.config import TrainingConfig
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.curation.preference_pairs import PAIR_SCHEMA, PAIRS_FILE, make_pair
from flywheel.models.artifact import (
    ModelArtifact,
    load_adapter,
    model_version_id,
    read_candidate,
    verify_adapter,
)
from flywheel.training.data import EvalLeakError
from flywheel.training.dpo import preference_stage
from flywheel.training.trainer import train
from tests.training.examples import FAST, qa_examples, request, write_dataset

DPO = {"enabled": True, "min_pairs": 4, "max_steps": 2, "learning_rate": 5e-3, "beta": 0.1}


def write_pairs(home: FlywheelHome, version: str = "ds0001", n: int = 6, offset: int = 0) -> None:
    pairs = [make_pair([{"role": "system", "content": "Answer briefly."},
                        {"role": "user", "content": f"Q{i + offset}: what is {i} plus {i}?"}],
                       str(2 * i), str(2 * i + 1), "user_correction", {"interaction_id": f"x{i}"}) for i in range(n)]
    write_parquet(pa.Table.from_pylist(pairs, schema=PAIR_SCHEMA), home.dataset(version) / PAIRS_FILE)


def test_dpo_continues_the_sft_adapter_and_becomes_the_candidate(home: FlywheelHome) -> None:
    write_dataset(home, qa_examples(12))
    write_pairs(home)
    result = train(request(home, dpo=DPO))
    pref = result.preference
    assert pref["stage"] == "dpo" and pref["pairs"] == 6 and pref["steps"] == 2 and not pref["reused"]
    sft_version = model_version_id("ds0001", TrainingConfig(**FAST), None)  # the SFT id leaves training.dpo out
    assert pref["sft_version"] == sft_version != result.version
    candidate = read_candidate(home)
    assert candidate.version == result.version and candidate.manifest["sft_version"] == sft_version
    assert verify_adapter(candidate.path)["preference"]["config"]["beta"] == 0.1
    assert json.loads((Path(candidate.path) / "training_config.json").read_text())["dpo"]["enabled"] is False
    assert not (Path(candidate.path) / "ref").exists()  # only the trained adapter, not trl's frozen reference copy
    sft = load_file(str(home.model(sft_version) / "adapter_model.safetensors"))
    dpo = load_file(str(Path(candidate.path) / "adapter_model.safetensors"))
    assert sft.keys() == dpo.keys()
    assert any(not (sft[k] == dpo[k]).all() for k in sft)  # DPO moved the adapter
    model, _ = load_adapter(candidate, home)
    assert model.peft_config["default"].r == FAST["lora"]["r"]
    again = train(request(home, dpo=DPO))  # same SFT adapter, settings and pairs: both reused
    assert again.version == result.version and again.reused and again.preference["reused"]


def test_the_stage_is_skipped_with_its_reason(home: FlywheelHome, tmp_path: Path) -> None:
    sft = ModelArtifact("sft1", tmp_path, {"dataset_version": "ds0001", "base_model": "tiny"})
    off = preference_stage(home, sft, TrainingConfig(**FAST))
    assert off == (sft, {"stage": "skipped", "reason": "training.dpo.enabled is false"})
    on = TrainingConfig(**FAST, dpo=DPO)
    artifact, report = preference_stage(home, sft, on)
    assert artifact is sft and "has no preference pairs" in report["reason"]
    write_pairs(home, n=3)
    artifact, report = preference_stage(home, sft, on)
    assert artifact is sft and report["reason"] == "3 preference pair(s), fewer than training.dpo.min_pairs 4"


def test_pairs_that_copy_an_eval_input_are_refused_before_training(home: FlywheelHome, tmp_path: Path) -> None:
    write_pairs(home)
    sft = ModelArtifact("sft1", tmp_path, {"dataset_version": "ds0001", "base_model": "tiny"})
    evals = [[{"role": "user", "content": "q2: What is 2 plus 2"}, {"role": "assistant", "content": "4"}]]
    with pytest.raises(EvalLeakError, match="preference_pairs"):
        preference_stage(home, sft, TrainingConfig(**FAST, dpo=DPO), evals)
