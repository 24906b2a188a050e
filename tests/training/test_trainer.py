"""LoRA SFT on the tiny model (CPU): end to end, determinism, leak refusal, corrupted adapters,
interruption, and the `lora_adapter` asset through Dagster Pipes."""

from __future__ import annotations

import json
import os
from pathlib import Path

# before torch loads OpenMP (see flywheel.training.entry.main): no busy-waiting threads on a shared CPU
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from urllib.parse import unquote
from xml.etree import ElementTree

import dagster as dg
import pyarrow.parquet as pq
import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from assets.metadata import INLINE_MARKDOWN_CHARS
from assets.resources import FlywheelResource
from assets.training import lora_adapter
from flywheel.config import TrainingConfig
from flywheel.core.quarters import read_quarter, update_quarter
from flywheel.core.storage import FlywheelHome
from flywheel.models.artifact import (
    AdapterError,
    eval_set_hash,
    load_adapter,
    model_version_id,
    read_candidate,
    seed_replicate_ids,
    verify_adapter,
)
from flywheel.models.serving import vllm_adapter_warnings
from flywheel.training.data import EvalLeakError
from flywheel.training.trainer import train
from tests.training.examples import FAST, qa_examples, request, write_dataset, write_eval_set


def test_tiny_training_end_to_end(home: FlywheelHome) -> None:
    write_dataset(home, qa_examples(40))
    eval_path = write_eval_set(home, qa_examples(5, seed=9, offset=1000))
    result = train(request(home, eval_path))
    folder = Path(result.path)
    assert folder == home.model(result.version)
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "training_config.json",
        "manifest.json",
        "loss_curve.png",
    ):
        assert (folder / name).is_file(), name
    manifest = json.loads((folder / "manifest.json").read_text())
    expected_hash = eval_set_hash(pq.read_table(eval_path))  # the eval rows' content hash
    assert manifest["dataset_version"] == "ds0001" and manifest["eval_set_hash"] == expected_hash
    assert manifest["base_model"] == "tiny" and Path(manifest["base_model_resolved"]).is_dir()
    assert manifest["metrics"]["steps"] == 3 and manifest["metrics"]["tokens_per_s"] > 0
    assert len(manifest["loss_curve"]) >= 2 and 0 < manifest["trained_token_share"] < 1
    candidate = read_candidate(home)
    assert (candidate.version, candidate.path) == (result.version, folder)
    assert result.version == model_version_id("ds0001", TrainingConfig(**FAST), expected_hash)
    tensors = load_file(folder / "adapter_model.safetensors")
    assert any(
        "lora_B" in k and v.abs().sum() > 0 for k, v in tensors.items()
    )  # B starts at zero: it trained
    model, _ = load_adapter(folder, home)
    assert type(model).__name__.startswith("Peft")
    # what vLLM's --lora-modules reads: base, rank, alpha, concrete target modules, nothing trained in full
    adapter_config = json.loads((folder / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == manifest["base_model_resolved"]
    assert (adapter_config["r"], adapter_config["lora_alpha"]) == (4, 8)
    targets = adapter_config["target_modules"]
    assert targets == sorted(targets) and {t.rsplit(".", 1)[-1] for t in targets} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }
    assert not adapter_config["modules_to_save"] and not adapter_config["use_dora"] and adapter_config["bias"] == "none"
    assert vllm_adapter_warnings(adapter_config) == []
    assert not any("lm_head" in k or "embed_tokens" in k for k in tensors)
    # same inputs again: the version exists, nothing is retrained
    again = train(request(home, eval_path))
    assert again.reused and again.version == result.version


def test_same_seed_same_data_same_adapter(tmp_path: Path) -> None:
    tensors = []
    for name in ("a", "b"):
        home = FlywheelHome(tmp_path / name)
        write_dataset(home, qa_examples(30))
        tensors.append(load_file(Path(train(request(home)).path) / "adapter_model.safetensors"))
    assert tensors[0].keys() == tensors[1].keys()
    for key in tensors[0]:
        assert (tensors[0][key] == tensors[1][key]).all(), key


def test_eval_leak_is_refused_before_training(home: FlywheelHome) -> None:
    rows = qa_examples(10)
    write_dataset(home, rows)
    leaked = json.loads(json.dumps(rows[3]))
    leaked["messages"][1]["content"] = (
        "  " + leaked["messages"][1]["content"].upper() + " "
    )  # normalized match
    eval_path = write_eval_set(home, [*qa_examples(3, seed=5, offset=500), leaked])
    with pytest.raises(EvalLeakError, match="row 3"):
        train(request(home, eval_path))
    assert not home.path("models").exists() or not any(
        p.name != "base-tiny" for p in home.path("models").iterdir()
    )


def test_corrupted_adapter_gives_a_clear_error(home: FlywheelHome) -> None:
    write_dataset(home, qa_examples(20))
    folder = Path(train(request(home, max_steps=1)).path)
    weights = folder / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterError, match="adapter_model.safetensors: corrupted"):
        load_adapter(folder, home)
    weights.write_bytes(b"not a safetensors file")
    (folder / "manifest.json").write_text(
        json.dumps({**json.loads((folder / "manifest.json").read_text()), "files": {}})
    )
    with pytest.raises(AdapterError, match="corrupted"):
        verify_adapter(folder)


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step == 2:
            raise KeyboardInterrupt("simulated interruption")


def test_interrupted_run_leaves_no_version(home: FlywheelHome) -> None:
    write_dataset(home, qa_examples(20))
    with pytest.raises(KeyboardInterrupt):
        train(request(home), callbacks=[Interrupt()])
    leftovers = sorted(p.name for p in home.path("models").iterdir())
    assert leftovers == ["base-tiny"]
    with pytest.raises(AdapterError, match="no candidate model yet"):
        read_candidate(home)


# --- Dagster (through Pipes) ---------------------------------------------------------------------
def test_lora_adapter_asset_through_pipes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flywheel.yaml").write_text(
        "training:\n  max_steps: 2\n  batch_size: 4\n  max_length: 256\n  lora: {r: 4, alpha: 8, dropout: 0.0}\n"
    )
    home = FlywheelHome(tmp_path / "home")
    dataset = write_dataset(home, qa_examples(80))  # 10% = 8 examples: the smallest validation split by default
    write_eval_set(home, qa_examples(4, seed=7, offset=100))
    update_quarter(home, "2026-Q4", dataset_version=dataset)  # what training_dataset records for its quarter
    result = dg.materialize(
        [lora_adapter],
        resources={"flywheel": FlywheelResource(project_dir=str(project), home_dir=str(home.root))},
        partition_key="2026-10-01",
    )
    assert result.success
    mats = result.asset_materializations_for_node("lora_adapter")
    meta = mats[-1].metadata
    version = meta["version"].value
    assert Path(meta["path"].value) == home.model(version)
    assert meta["steps"].value == 2 and meta["tokens_per_s"].value > 0
    assert len(meta["loss_curve"].value["points"]) >= 2
    assert "data:image/png;base64," in meta["loss_curve_plot"].value
    assert read_candidate(home).version == version and read_quarter(home, "2026-Q4")["model_version"] == version
    assert meta["quarter"].value == "2026-Q4"
    # the ML facts: recipe (rounded), base model, validation split, losses per evaluation, inline chart
    recipe = meta["hyperparameters"].value
    for row in ("| learning rate | 0.0002 |", "| epochs | 3 |", "| max steps | 2 |", "| batch size | 4 x 1 accumulation |",
                "| LoRA r / alpha / dropout | 4 / 8 / 0.0 |", "| LoRA target modules | all-linear |", "| seed | 42 |",
                "| max length | 256 |", "| early stopping patience | off |"):
        assert row in recipe, row
    assert meta["base_model"].value == "tiny" and Path(meta["base_model_path"].value).is_dir()
    assert meta["validation"].value.startswith("8 examples held out")
    (row,) = [r.data for r in meta["loss_by_epoch"].value.records]
    assert row["step"] == 2 and row["val_loss"] == round(meta["val_loss"].value, 4) and row["train_loss"] > 0
    inline = meta["loss_curve_inline"].value
    assert len(inline) < INLINE_MARKDOWN_CHARS and inline.startswith("![loss curve")
    svg = ElementTree.fromstring(unquote(inline.split("data:image/svg+xml,", 1)[1].rstrip(")")))
    assert svg.tag.endswith("svg") and len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 2


def test_seed_replicates_train_beside_the_candidate_and_never_become_it(home: FlywheelHome) -> None:
    write_dataset(home, qa_examples(20))
    req = request(home, max_steps=2).model_copy(update={"seed_replicates": 2})
    result = train(req)
    expected = seed_replicate_ids(result.dataset_version, req.training, result.eval_set_hash, 2)
    assert result.replicates == expected and result.version not in expected
    for rid in expected:
        manifest = verify_adapter(home.model(rid))
        assert manifest["version"] == rid
    seeds = [json.loads((home.model(rid) / "training_config.json").read_text())["seed"] for rid in expected]
    assert seeds == [req.training.seed + 1, req.training.seed + 2]
    assert read_candidate(home).version == result.version
    again = train(req)  # everything intact: reused, nothing retrained
    assert again.reused and again.replicates == expected
