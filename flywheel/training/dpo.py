"""The optional preference stage after SFT: DPO (trl's DPOTrainer) on the dataset version's preference
pairs (`flywheel.curation.preference_pairs`), continuing the SFT LoRA adapter.

trl gives a PEFT model that already holds an adapter a frozen copy of it (adapter "ref") as the DPO
reference, so the policy moves away from the SFT adapter, not from the base model; only the trained
adapter is saved. The result is its own model version, `models/<id>/`, whose id hashes the SFT version,
`training.dpo` and the pairs, with the SFT adapter's `training_config.json` (its seed replicates are
found from it) and a `preference` section in its manifest. `preference_stage` returns the candidate
the gate sees: the DPO'd adapter when `training.dpo.enabled` and at least `min_pairs` pairs exist,
else the SFT adapter, with the reason in the stage's report.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from flywheel.config import CurationConfig, TrainingConfig
from flywheel.core.storage import FlywheelHome, atomic_dir, local_copy, write_json
from flywheel.curation.preference_pairs import pair_conversations, pairs_hash, read_preference_pairs
from flywheel.models.artifact import (
    ADAPTER_CONFIG,
    ADAPTER_FILES,
    AdapterError,
    ModelArtifact,
    canonical_adapter_config,
    file_sha256,
    verify_adapter,
)
from flywheel.models.base import load_base
from flywheel.training.data import check_eval_leaks
from flywheel.training.device import plan_device

CARRIED_FILES = ("training_config.json", "loss_curve.png")  # from the SFT folder: its recipe and curve


def dpo_version_id(sft_version: str, cfg: TrainingConfig, pairs_digest: str) -> str:
    """Content id of a DPO run: the same SFT adapter, DPO settings and pairs give the same id."""
    key = {"sft_version": sft_version, "dpo": cfg.dpo.model_dump(mode="json"), "pairs": pairs_digest}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def preference_stage(
    home: FlywheelHome,
    sft: ModelArtifact,
    cfg: TrainingConfig,
    eval_messages: Sequence[list[dict[str, str]]] | None = None,
    leak_rule: CurationConfig | None = None,
    force: bool = False,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[ModelArtifact, dict[str, Any]]:
    """(the candidate, the stage's report): DPO on the SFT adapter's dataset version's pairs, or the SFT
    adapter itself with the reason the stage was skipped. Pairs copying an eval input are refused
    (`EvalLeakError`) before training, like SFT rows."""
    d = cfg.dpo
    dataset_version = sft.dataset_version or ""
    if not d.enabled:
        return sft, {"stage": "skipped", "reason": "training.dpo.enabled is false"}
    pairs = read_preference_pairs(home, dataset_version)
    if pairs is None:
        return sft, {"stage": "skipped", "reason": f"dataset version {dataset_version} has no preference pairs "
                                                   "(materialize preference_pairs)"}
    if len(pairs) < d.min_pairs:
        return sft, {"stage": "skipped", "pairs": len(pairs),
                     "reason": f"{len(pairs)} preference pair(s), fewer than training.dpo.min_pairs {d.min_pairs}"}
    if eval_messages is not None:
        check_eval_leaks(pair_conversations(pairs), eval_messages, train_source=f"datasets/{dataset_version}/preference_pairs",
                         example_ids=[p["pair_id"] for p in pairs], config=leak_rule)
    version = dpo_version_id(sft.version, cfg, pairs_hash(pairs))
    target = home.model(version)
    if not force and (target / "manifest.json").is_file():
        try:
            manifest = verify_adapter(target)
        except AdapterError as exc:
            say(f"existing {target} is unusable ({exc}): running DPO again")
        else:
            say(f"DPO version {version} already trained from the same SFT adapter and pairs: reusing {target}")
            return ModelArtifact(version, target, manifest), {**manifest["preference"], "reused": True}
    manifest = train_dpo(home, sft, cfg, pairs, version, say)
    return ModelArtifact(version, target, manifest), {**manifest["preference"], "reused": False}


def train_dpo(home: FlywheelHome, sft: ModelArtifact, cfg: TrainingConfig, pairs: Sequence[dict[str, Any]],
              version: str, say: Callable[[str], None]) -> dict[str, Any]:
    """DPO the SFT adapter on `pairs`; writes `models/<version>/` atomically and returns its manifest."""
    from datasets import Dataset
    from peft import PeftModel
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    d = cfg.dpo
    plan = plan_device(cfg)
    set_seed(cfg.seed)
    model, tokenizer = load_base(cfg.base_model, home, dtype=plan.dtype, attn_implementation=plan.attn_implementation)
    model = PeftModel.from_pretrained(model, str(local_copy(sft.path)), is_trainable=True)
    rows = [{"prompt": [dict(m) for m in p["prompt"]], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps
    total = d.max_steps or max(1, math.ceil(math.ceil(len(rows) / per_step) * d.epochs))
    with tempfile.TemporaryDirectory(prefix="flywheel-dpo-") as scratch:
        args = DPOConfig(
            output_dir=scratch, beta=d.beta, learning_rate=d.learning_rate, num_train_epochs=d.epochs,
            max_steps=d.max_steps or -1, per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_length=cfg.max_length,
            lr_scheduler_type="cosine", warmup_steps=max(0, int(round(cfg.warmup_ratio * total))), weight_decay=0.0,
            **({"gradient_checkpointing": True} if cfg.gradient_checkpointing else {}), bf16=plan.bf16, fp16=False, use_cpu=plan.device == "cpu",
            seed=cfg.seed, data_seed=cfg.seed, logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True,
            dataloader_num_workers=0, dataset_num_proc=None)
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        say(f"DPO on {len(rows)} preference pairs from SFT adapter {sft.version} ({plan.device}, beta {d.beta}, "
            f"{total} steps)")
        start = time.perf_counter()
        output = trainer.train()
        wall = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "loss" in h]
    last = logs[-1] if logs else {}
    report = {
        "stage": "dpo", "sft_version": sft.version, "dataset_version": sft.dataset_version, "pairs": len(rows),
        "config": d.model_dump(mode="json"), "steps": int(output.global_step), "train_loss": float(output.training_loss),
        "first_loss": logs[0]["loss"] if logs else None, "final_loss": last.get("loss"),
        "reward_accuracy": last.get("rewards/accuracies"), "reward_margin": last.get("rewards/margins"),
        "train_runtime_s": round(wall, 3),
    }
    target = home.model(version)
    with atomic_dir(target) as tmp:
        trainer.model.save_pretrained(str(tmp), selected_adapters=["default"])
        canonical_adapter_config(tmp / ADAPTER_CONFIG)
        (tmp / "README.md").unlink(missing_ok=True)
        for name in CARRIED_FILES:
            if (sft.path / name).is_file():
                (tmp / name).write_bytes((sft.path / name).read_bytes())
        manifest = {**sft.manifest, "version": version, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "sft_version": sft.version, "preference": report,
                    "files": {name: file_sha256(tmp / name) for name in ADAPTER_FILES}}
        write_json(manifest, tmp / "manifest.json")
    say(f"wrote {target} (DPO loss {report['first_loss']} -> {report['final_loss']}, reward accuracy "
        f"{report['reward_accuracy']})")
    return manifest
