"""The device plan (the GPU path's selection, checked on a CPU) and what it loads and packs."""

from __future__ import annotations

import pytest

from flywheel.config import TrainingConfig
from flywheel.core.storage import FlywheelHome
from flywheel.models.base import build_tiny_tokenizer, load_base
from flywheel.training.data import PackedCollator, tokenize_examples
from flywheel.training.device import DevicePlan, plan_device
from flywheel.training.trainer import pack_length
from tests.training.examples import qa_examples


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
    gpu = DevicePlan("cuda", "bfloat16", True, "sdpa", False, 8)
    cpu = DevicePlan("cpu", "float32", False, "sdpa", False, None)
    cfg = TrainingConfig(max_length=1024)
    data = tokenize_examples(build_tiny_tokenizer(), [m["messages"] for m in qa_examples(4)], [1.0] * 4, max_length=1024)
    assert pack_length(cfg, gpu, data) == 1024  # long rows on a GPU
    assert pack_length(cfg, cpu, data) == 256  # short rows on a CPU (quadratic SDPA cost)
    batch = PackedCollator(0, pad_to_multiple_of=gpu.pad_to_multiple_of)(data.rows[:2])
    assert batch["input_ids"].shape[1] % 8 == 0
    # what the plan asks is what gets loaded
    model, _ = load_base("tiny", home, dtype=gpu.dtype, attn_implementation=gpu.attn_implementation)
    assert str(model.dtype) == "torch.bfloat16" and model.config._attn_implementation == "sdpa"
