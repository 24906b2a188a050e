"""LoRA SFT on the tiny model (CPU): end to end, masks, determinism, corrupted adapters, interruption, Pipes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

# before torch loads OpenMP (see flywheel.training.trainer.main): no busy-waiting threads on a shared CPU
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dagster as dg
import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from assets.resources import FlywheelResource
from assets.training import lora_adapter
from flywheel.config import TrainingConfig
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_json, write_parquet
from flywheel.models.base import build_tiny_tokenizer
from flywheel.models.registry import vllm_adapter_warnings
from flywheel.training.data import (
    EvalLeakError,
    NoTrainableTokensError,
    pack_rows,
    repeats_for_weight,
    tokenize_conversation,
    tokenize_examples,
)
from flywheel.training.trainer import (
    AdapterError,
    TrainingRequest,
    load_adapter,
    model_version,
    read_candidate,
    train,
    verify_adapter,
)

FAST = {
    "max_steps": 3,
    "batch_size": 4,
    "max_length": 256,
    "learning_rate": 2e-3,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
}


def qa_examples(n: int, seed: int = 0, offset: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        messages = [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"Q{i + offset}: what is {a} plus {b}?"},
            {"role": "assistant", "content": f"{a + b}"},
        ]
        rows.append(make_example(messages, "human", weight=rng.choice([0.5, 1.0, 2.0])))
    return rows


def write_dataset(home: FlywheelHome, rows: list[dict], version: str = "ds0001") -> str:
    write_parquet(examples_table(rows), home.dataset(version) / "train.parquet")
    home.path("datasets").mkdir(parents=True, exist_ok=True)
    home.path("datasets", "LATEST").write_text(version + "\n")
    return version


def write_eval_set(home: FlywheelHome, rows: list[dict]) -> Path:
    path = home.warehouse("fixed_eval_set", "current")
    write_parquet(examples_table(rows), path)
    write_json({"content_hash": "evalhash0001"}, path.with_suffix(".json"))
    return path


def request(home: FlywheelHome, eval_path: Path | None = None, **overrides) -> TrainingRequest:
    return TrainingRequest(
        home=str(home.root),
        training=TrainingConfig(**{**FAST, **overrides}),
        eval_set_path=str(eval_path) if eval_path else None,
    )


# --- data path -----------------------------------------------------------------------------------
def test_assistant_mask_covers_only_the_answer_and_fallback_agrees() -> None:
    tok = build_tiny_tokenizer()
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "ok"},
    ]
    ids, mask = tokenize_conversation(tok, messages)
    trained = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert trained == "yo<|im_end|>ok<|im_end|>"
    # a template without {% generation %} markers takes the prefix-diff route and gives the same mask
    tok.chat_template = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert tokenize_conversation(tok, messages) == (ids, mask)


def test_empty_assistant_mask_is_refused() -> None:
    tok = build_tiny_tokenizer()
    no_answer = [[{"role": "user", "content": "only a question"}]] * 3
    with pytest.raises(NoTrainableTokensError, match="0 assistant tokens"):
        tokenize_examples(tok, no_answer, [1.0] * 3, max_length=128)
    # truncation that cuts every answer away is the same trap
    long_prompt = [[{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "answer"}]]
    with pytest.raises(NoTrainableTokensError, match="max_length=64"):
        tokenize_examples(tok, long_prompt, [1.0], max_length=64)


def test_weights_repeat_examples_and_counts_conserve() -> None:
    assert [repeats_for_weight(w) for w in (0.0, 0.3, 0.5, 1.0, 1.49, 1.5, 3.0, None)] == [
        0,
        1,
        1,
        1,
        1,
        2,
        3,
        1,
    ]
    tok = build_tiny_tokenizer()
    convs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}] for i in range(4)]
    data = tokenize_examples(tok, convs, [0.0, 1.0, 2.0, 3.0], max_length=128)
    c = data.counts
    assert (
        c["examples"] == c["examples_kept"] + c["dropped_zero_weight"] + c["dropped_no_assistant_tokens"] == 4
    )
    assert c["rows"] == 6 and len(data.rows) == 6
    assert 0 < data.trained_token_share < 1


def test_packing_keeps_every_token_once_within_the_limit() -> None:
    rows = [{"input_ids": [i] * n, "labels": [i] * n} for i, n in enumerate([5, 9, 3, 7, 2, 10, 1])]
    packed = pack_rows(rows, 10)
    assert all(len(p["input_ids"]) <= 10 and sum(p["seq_lengths"]) == len(p["input_ids"]) for p in packed)
    assert sorted(t for p in packed for t in p["input_ids"]) == sorted(
        t for r in rows for t in r["input_ids"]
    )
    assert len(packed) == 4  # 37 tokens in bins of 10


# --- training ------------------------------------------------------------------------------------
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
    assert manifest["dataset_version"] == "ds0001" and manifest["eval_set_hash"] == "evalhash0001"
    assert manifest["base_model"] == "tiny" and Path(manifest["base_model_resolved"]).is_dir()
    assert manifest["metrics"]["steps"] == 3 and manifest["metrics"]["tokens_per_s"] > 0
    assert len(manifest["loss_curve"]) >= 2 and 0 < manifest["trained_token_share"] < 1
    assert read_candidate(home) == {**read_candidate(home), "version": result.version, "path": str(folder)}
    assert result.version == model_version("ds0001", TrainingConfig(**FAST), "evalhash0001")
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
    assert read_candidate(home) is None


# --- Dagster (through Pipes) ---------------------------------------------------------------------
def test_lora_adapter_asset_through_pipes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flywheel.yaml").write_text(
        "training:\n  max_steps: 2\n  batch_size: 4\n  max_length: 256\n  lora: {r: 4, alpha: 8, dropout: 0.0}\n"
    )
    home = FlywheelHome(tmp_path / "home")
    write_dataset(home, qa_examples(16))
    write_eval_set(home, qa_examples(4, seed=7, offset=100))
    result = dg.materialize(
        [lora_adapter],
        resources={"flywheel": FlywheelResource(project_dir=str(project), home_dir=str(home.root))},
    )
    assert result.success
    mats = result.asset_materializations_for_node("lora_adapter")
    meta = mats[-1].metadata
    version = meta["version"].value
    assert Path(meta["path"].value) == home.model(version)
    assert meta["steps"].value == 2 and meta["tokens_per_s"].value > 0
    assert len(meta["loss_curve"].value["points"]) >= 2
    assert "data:image/png;base64," in meta["loss_curve_plot"].value
    assert read_candidate(home)["version"] == version


def test_packed_rows_train_like_separate_examples() -> None:
    """Packing (per-row block-diagonal masks) and padding-free flattening give the same summed token
    loss as running each example alone: no attention crosses an example boundary. (transformers only
    derives the block mask from position ids without a KV cache: trl passes use_cache=False.)"""
    import torch

    from flywheel.models.base import build_tiny_model
    from flywheel.training.data import IGNORE_INDEX
    from flywheel.training.trainer import PackedCollator

    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok).eval()
    convs = [
        [{"role": "user", "content": "q" * n}, {"role": "assistant", "content": "a" * (n + 3)}]
        for n in (5, 17, 9)
    ]
    data = tokenize_examples(tok, convs, [1.0] * 3, max_length=128)

    def summed_loss(batch: dict) -> float:
        labels = batch["labels"]
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
            ).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        target = labels[:, 1:]
        keep = target != IGNORE_INDEX
        return float(-logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].sum())

    alone = sum(summed_loss(PackedCollator(tok.pad_token_id)([r])) for r in data.rows)
    packed = pack_rows(data.rows, 96)
    assert len(packed) < len(data.rows)
    for padding_free in (False, True):
        collate = PackedCollator(tok.pad_token_id, padding_free=padding_free, pad_to_multiple_of=8)
        batch = collate(packed)
        assert batch["real_tokens"] == sum(len(r["input_ids"]) for r in data.rows)
        assert summed_loss(batch) == pytest.approx(alone, rel=1e-4)


# --- device plan (the GPU path's selection, checked on a CPU) ------------------------------------
def _fake_machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, bf16: bool = True, flash: bool = False) -> None:
    import importlib.util

    import torch

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: (object() if flash else None) if name == "flash_attn" else real_find_spec(name, *a)
    )


def test_device_plan_selects_the_gpu_path_by_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.training.trainer import plan_device

    _fake_machine(monkeypatch, cuda=True, flash=True)  # GPU with flash-attn: bf16, varlen, padding-free
    plan = plan_device(TrainingConfig())
    assert (plan.device, plan.dtype, plan.bf16, plan.attn_implementation, plan.padding_free, plan.pad_to_multiple_of) == (
        "cuda", "bfloat16", True, "flash_attention_2", True, 8
    )
    _fake_machine(monkeypatch, cuda=True, flash=False)  # GPU without flash-attn: bf16 + SDPA, packed rows
    plan = plan_device(TrainingConfig())
    assert (plan.dtype, plan.bf16, plan.attn_implementation, plan.padding_free) == ("bfloat16", True, "sdpa", False)
    assert plan_device(TrainingConfig(padding_free="on")).padding_free
    _fake_machine(monkeypatch, cuda=True, bf16=False)  # a GPU without bf16 (V100): fp32 weights, no bf16 autocast
    plan = plan_device(TrainingConfig())
    assert (plan.dtype, plan.bf16) == ("float32", False)
    _fake_machine(monkeypatch, cuda=False, flash=True)  # CPU: the same path in fp32 with SDPA, even with flash-attn installed
    plan = plan_device(TrainingConfig())
    assert (plan.device, plan.dtype, plan.bf16, plan.attn_implementation, plan.padding_free, plan.pad_to_multiple_of) == (
        "cpu", "float32", False, "sdpa", False, None
    )
    assert plan_device(TrainingConfig(bf16="off", attn_implementation="eager")).attn_implementation == "eager"


def test_gpu_plan_packs_to_max_length_and_loads_bf16_weights(home: FlywheelHome) -> None:
    from flywheel.training.trainer import DevicePlan, PackedCollator, load_base_for_training, pack_length

    gpu = DevicePlan("cuda", "bfloat16", True, "sdpa", False, 8)
    cpu = DevicePlan("cpu", "float32", False, "sdpa", False, None)
    cfg = TrainingConfig(max_length=1024)
    data = tokenize_examples(build_tiny_tokenizer(), [m["messages"] for m in qa_examples(4)], [1.0] * 4, max_length=1024)
    assert pack_length(cfg, gpu, data) == 1024  # long rows on a GPU
    assert pack_length(cfg, cpu, data) == 256  # short rows on a CPU (quadratic SDPA cost)
    batch = PackedCollator(0, pad_to_multiple_of=gpu.pad_to_multiple_of)(data.rows[:2])
    assert batch["input_ids"].shape[1] % 8 == 0
    model, _, _ = load_base_for_training("tiny", home, gpu)  # what the plan asks is what gets loaded
    assert str(model.dtype) == "torch.bfloat16" and model.config._attn_implementation == "sdpa"
