"""The `training` section: the LoRA recipe, DPO, and where training runs."""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import Field, field_validator

from flywheel.config.base import StrictModel
from flywheel.config.kubernetes import TrainingPodConfig


class LoraConfig(StrictModel):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    modules_to_save: list[str] = Field(default_factory=list, description="modules trained in full and saved with the adapter (avoid for vLLM serving)")


class DpoConfig(StrictModel):
    """The optional preference stage after SFT: DPO (trl) on the dataset version's preference pairs,
    continuing the SFT LoRA adapter against a frozen copy of it."""

    enabled: bool = Field(False, description="train the SFT adapter further on preference pairs; the gate sees the result")
    beta: float = Field(0.1, gt=0, description="how far the policy may move from the SFT adapter (higher: less)")
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    min_pairs: int = Field(50, ge=1, description="with fewer accepted pairs the stage is skipped (the SFT adapter is the candidate)")
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer steps (tests); None: all epochs")


class TrainingConfig(StrictModel):
    base_model: str = Field("tiny", description="a local path, a hub id, or `tiny` for the built-in test model")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(3.0, gt=0)
    max_length: int = Field(1024, gt=0)
    batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    packing: bool = True
    seed: int = 42
    bf16: Literal["auto", "on", "off"] = "auto"
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer steps (tests, smoke runs); None: run all epochs")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention"] = Field(
        "auto", description="auto: flash_attention_2 on a GPU when flash-attn is installed, else sdpa"
    )
    pack_length: int | None = Field(
        None, gt=0, description="tokens per packed row; None: max_length on a GPU or padding-free, else max(256, longest example) capped at max_length"
    )
    padding_free: Literal["auto", "on", "off"] = Field("auto", description="flatten each batch to one row; auto: on with flash attention")
    gradient_checkpointing: bool = Field(False, description="trade ~20-30% speed for activation memory (large models)")
    device_tags: dict[str, str] = Field(default_factory=dict, description="extra run tags of the retrain job (laid over those built from `pod`)")
    pod: TrainingPodConfig = Field(default_factory=TrainingPodConfig, description="the GPU pod on Kubernetes (deployments only)")
    dpo: DpoConfig = Field(default_factory=DpoConfig)
    validation_share: float = Field(
        0.1, ge=0, le=0.5, description="share of the training examples held out (by example id, seeded) for a "
        "validation loss per epoch; never the eval set; 0 disables")
    validation_min_examples: int = Field(
        8, ge=1, description="no validation split when the share would hold out fewer examples than this")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many evaluations without a lower validation loss and keep the best "
        "epoch's adapter; None: off (needs a validation split)")

    # keys that say where training runs, not what it trains: left out of model version ids and tracked params
    PLACEMENT_KEYS: typing.ClassVar[frozenset[str]] = frozenset({"device_tags", "pod"})

    @field_validator("device_tags")
    @classmethod
    def _no_pod_config(cls, value: dict[str, str]) -> dict[str, str]:
        if "dagster-k8s/config" in value:
            raise ValueError("the retrain run's dagster-k8s/config is built from training.pod: set the GPU, node "
                             "selector and tolerations there")
        return value
