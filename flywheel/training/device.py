"""The device plan: how this machine trains (device, weight dtype, mixed precision, attention kernel,
batch layout), detected once per run from the config and the hardware."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from flywheel.config import TrainingConfig


@dataclass(frozen=True)
class DevicePlan:
    """How to run on this machine: device, weight dtype, mixed precision, attention kernel, batching."""

    device: str  # cuda | cpu
    dtype: str  # bfloat16 | float32: the dtype the base weights are loaded in
    bf16: bool  # autocast in bf16
    attn_implementation: str
    padding_free: bool  # flatten the batch to one row (varlen kernels); else one packed row per sample
    pad_to_multiple_of: int | None


def plan_device(cfg: TrainingConfig) -> DevicePlan:
    """GPU: bf16 weights + autocast, flash attention when installed (then padding-free), else SDPA.
    CPU: the same code path in fp32 with SDPA."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = cfg.bf16 == "on" or (cfg.bf16 == "auto" and cuda and torch.cuda.is_bf16_supported())
    attn = cfg.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") is not None else "sdpa"
    padding_free = attn.startswith("flash") if cfg.padding_free == "auto" else cfg.padding_free == "on"
    return DevicePlan(
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if bf16 and cuda else "float32",
        bf16=bf16,
        attn_implementation=attn,
        padding_free=padding_free,
        pad_to_multiple_of=8 if cuda else None,
    )
