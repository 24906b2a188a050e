"""LoRA SFT of the base model on a dataset version (peft + trl's SFTTrainer).

`train(request) -> TrainingResult` is the whole run: it refuses eval-set leaks and empty assistant
masks before the first step, holds out a validation split of the training examples (its loss is
measured every epoch; optional early stopping on it), trains, and writes `models/<version>/`
atomically (adapter, `training_config.json`, `manifest.json`, `loss_curve.png`) and
`models/candidate.json`. Same request on CPU -> the same version id and bit-identical adapter tensors.
With `MLFLOW_TRACKING_URI` set each run is also an MLflow run (`flywheel.training.tracking`).

The data path (chat template -> assistant-only labels -> weight repeats -> packing -> collator) lives
in `flywheel.training.data`, the device plan in `flywheel.training.device`, the artifact (version
id, integrity, candidate pointer) in `flywheel.models.artifact`; `python -m flywheel.training` runs
`train` as its own process (`flywheel.training.entry`).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.config import DpoConfig, TrainingConfig
from flywheel.core.storage import FlywheelHome, atomic_dir, storage_path, write_json
from flywheel.models.artifact import (
    ADAPTER_FILES,
    AdapterError,
    ModelArtifact,
    canonical_adapter_config,
    eval_set_hash,
    file_sha256,
    model_version_id,
    seed_replicate_ids,
    verify_adapter,
    write_candidate,
)
from flywheel.models.base import base_path, load_base, load_tokenizer
from flywheel.training.curves import (
    MAX_CURVE_POINTS,
    downsample,
    epoch_table,
    loss_curve_callback,
    render_loss_curve,
)
from flywheel.training.data import (
    NoTrainableTokensError,
    PackedCollator,
    TokenizedData,
    TrainingDataError,
    check_eval_leaks,
    pack_rows,
    read_examples,
    split_validation,
    tokenize_examples,
)
from flywheel.training.device import DevicePlan, plan_device
from flywheel.training.dpo import preference_stage
from flywheel.training.request import TrainingRequest, TrainingResult, latest_dataset_version
from flywheel.training.tracking import tracked_run, training_params

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

LOSS_PNG = "loss_curve.png"


# --- trainer ---------------------------------------------------------------------------------
def attach_lora(model: PreTrainedModel, cfg: TrainingConfig) -> PreTrainedModel:
    """Wrap the base model with a fresh LoRA adapter (seeded, so the init is reproducible)."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    set_seed(cfg.seed)
    lcfg = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        modules_to_save=cfg.lora.modules_to_save or None,
        task_type="CAUSAL_LM",
        bias="none",
    )
    return get_peft_model(model, lcfg)


def sft_config(cfg: TrainingConfig, plan: DevicePlan, output_dir: str, total_rows: int, evaluate: bool = False) -> Any:
    """The trl SFTConfig of this training path (pre-tokenized, pre-packed rows; our collator); with
    `evaluate` the validation loss is measured at the end of every epoch."""
    from trl import SFTConfig

    steps_per_epoch = max(1, math.ceil(total_rows / (cfg.batch_size * cfg.gradient_accumulation_steps)))
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    return SFTConfig(
        output_dir=output_dir,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(0, int(round(cfg.warmup_ratio * total))),
        weight_decay=0.0,
        max_length=cfg.max_length,
        packing=False,  # rows arrive packed by `pack_rows`
        padding_free=False,  # handled by PackedCollator
        completion_only_loss=False,
        assistant_only_loss=False,  # labels arrive masked
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=plan.bf16,
        fp16=False,
        use_cpu=plan.device == "cpu",
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=max(1, total // MAX_CURVE_POINTS),
        logging_first_step=True,
        save_strategy="no",
        eval_strategy="epoch" if evaluate else "no",
        per_device_eval_batch_size=cfg.batch_size,
        prediction_loss_only=True,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=True,
        shuffle_dataset=False,  # rows are shuffled (seeded) before packing; the sampler reshuffles per epoch
        dataset_num_proc=None,
    )


def pack_length(cfg: TrainingConfig, plan: DevicePlan, data: TokenizedData) -> int:
    """Tokens per packed row. SDPA/eager attention costs grow with the row length squared even when
    the mask is block-diagonal, so on a CPU rows stay short; varlen kernels and GPUs take max_length."""
    if cfg.pack_length:
        return min(cfg.pack_length, cfg.max_length)
    if plan.padding_free or plan.device == "cuda":
        return cfg.max_length
    longest = max((len(r["input_ids"]) for r in data.rows), default=1)
    return min(cfg.max_length, max(256, longest))


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: TokenizedData,
    cfg: TrainingConfig,
    plan: DevicePlan,
    output_dir: str,
    callbacks: Sequence[TrainerCallback] = (),
    eval_data: TokenizedData | None = None,
) -> Any:
    """An SFTTrainer over packed, assistant-masked rows with LoRA attached to `model`; `eval_data` (the
    validation split, packed the same way) is evaluated every epoch."""
    from datasets import Dataset
    from trl import SFTTrainer

    length = pack_length(cfg, plan, data)

    def packed(d: TokenizedData) -> list[dict[str, Any]]:
        return pack_rows(d.rows, length) if cfg.packing else [{**r, "seq_lengths": [len(r["input_ids"])]} for r in d.rows]

    rows = packed(data)
    dataset = Dataset.from_list(rows)
    # with a KV cache transformers ignores packed position ids, and examples would attend to each other
    model.config.use_cache = False
    peft_model = attach_lora(model, cfg)
    if cfg.gradient_checkpointing:
        peft_model.enable_input_require_grads()

    class FlywheelSFTTrainer(SFTTrainer):
        real_tokens = 0

        def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            self.real_tokens += int(inputs.pop("real_tokens", 0))
            return super().training_step(model, inputs, num_items_in_batch)

        def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                            ignore_keys: list[str] | None = None) -> Any:
            inputs.pop("real_tokens", None)
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    collator = PackedCollator(
        tokenizer.pad_token_id, padding_free=plan.padding_free, pad_to_multiple_of=plan.pad_to_multiple_of
    )
    trainer = FlywheelSFTTrainer(
        model=peft_model,
        args=sft_config(cfg, plan, output_dir, len(rows), evaluate=eval_data is not None),
        train_dataset=dataset,
        eval_dataset=Dataset.from_list(packed(eval_data)) if eval_data is not None else None,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=list(callbacks),
    )
    trainer.packed_rows = len(rows)
    trainer.pack_length = length if cfg.packing else None
    return trainer


# --- early stopping ----------------------------------------------------------------------------
def early_stopping_callback(patience: int) -> TrainerCallback:
    """Stops training after `patience` evaluations without a lower validation loss and keeps the best
    evaluation's LoRA weights (in memory), so `restore_best(model)` can put them back."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import TrainerCallback

    class EarlyStopping(TrainerCallback):
        best_loss: float | None = None
        best_step: int | None = None
        last_step: int | None = None
        stopped_early = False
        waited = 0
        best_state: dict[str, Any] | None = None

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                        model: Any = None, **kwargs: Any) -> None:
            loss = (metrics or {}).get("eval_loss")
            if loss is None:
                return
            self.last_step = int(state.global_step)
            if self.best_loss is None or loss < self.best_loss:
                self.best_loss, self.best_step, self.waited = float(loss), self.last_step, 0
                self.best_state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
                return
            self.waited += 1
            if self.waited >= patience and state.global_step < state.max_steps:
                self.stopped_early = True
                control.should_training_stop = True

        def restore_best(self, model: Any) -> bool:
            """Put the best evaluation's weights back; True when they were not the last ones."""
            if self.best_state is None or self.best_step == self.last_step:
                return False
            set_peft_model_state_dict(model, self.best_state)
            return True

    return EarlyStopping()


# --- the run ---------------------------------------------------------------------------------
def train(
    request: TrainingRequest,
    *,
    log: Callable[[str], None] | None = None,
    on_loss: Callable[[dict[str, float]], None] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainingResult:
    """LoRA SFT on a dataset version; writes `models/<version>/` atomically and `models/candidate.json`.

    Refuses (before any training) an eval-set leak and a dataset whose assistant mask is empty; reuses
    an intact `models/<version>/` of the same inputs unless `request.force`. With
    `request.seed_replicates` = k it then trains the same data with seeds `seed+1 .. seed+k` (their own
    folders, never the candidate), from which the gate measures training-seed noise. The validation
    split is drawn once (from the candidate's seed), so every replicate holds out the same examples."""
    say = log or (lambda msg: None)
    cfg = request.training.model_copy(update={"dpo": DpoConfig()})  # the SFT adapter's id and recipe leave DPO out
    home = FlywheelHome(request.home)
    dataset_version = request.dataset_version or latest_dataset_version(home)
    train_path = home.dataset(dataset_version) / "train.parquet"
    eval_path = storage_path(request.eval_set_path) if request.eval_set_path else None
    if eval_path is not None and not eval_path.is_file():
        raise TrainingDataError(f"{eval_path}: fixed eval set missing (materialize fixed_eval_set first)")
    _, messages, weights, example_ids = read_examples(train_path)
    eval_hash = request.eval_set_hash
    if eval_path is not None:
        eval_table, eval_messages, _, _ = read_examples(eval_path)
        eval_hash = eval_hash or eval_set_hash(eval_table)
        check_eval_leaks(
            messages,
            eval_messages,
            train_source=str(train_path),
            eval_source=str(eval_path),
            example_ids=example_ids,
            config=request.leak_rule,
        )
        say(f"leak check: {len(messages)} training inputs vs {len(eval_messages)} eval inputs, 0 leaks")
    split = split_validation(example_ids, weights, cfg.validation_share, cfg.validation_min_examples, cfg.seed)
    say(f"validation split: {len(split.validation_ids)} examples ({len(split.validation_rows)} rows) held out of "
        f"{len(messages)} rows" if split.validation_rows else f"no validation split: {split.skipped}")
    inputs = _FitInputs(home, dataset_version, train_path, [messages[i] for i in split.fit_rows],
                        [weights[i] for i in split.fit_rows], eval_hash, request.force,
                        [messages[i] for i in split.validation_rows], split.summary())
    replica_cfgs = [cfg.model_copy(update={"seed": cfg.seed + k}) for k in range(1, request.seed_replicates + 1)]
    for k, rid in enumerate(seed_replicate_ids(dataset_version, cfg, eval_hash, request.seed_replicates), start=1):
        say(f"seed replicate {k} of {request.seed_replicates}: seed {cfg.seed + k} -> {rid}")
    # on a CPU the replicates train beside the candidate, one process per core, instead of after it
    parallel = bool(replica_cfgs) and plan_device(cfg).device == "cpu" and (os.cpu_count() or 1) > 1
    pool = _replicate_pool(len(replica_cfgs)) if parallel else None
    try:
        futures = [pool.submit(_fit_quietly, inputs, rc) for rc in replica_cfgs] if pool else []
        version, target, manifest, reused = _fit(inputs, cfg, say, on_loss, callbacks)
        candidate, preference = preference_stage(  # the DPO'd adapter when training.dpo says so, else the SFT one
            home, ModelArtifact(version, target, manifest), request.training,
            eval_messages if eval_path is not None else None, request.leak_rule, request.force, say)
        write_candidate(home, candidate)
        replicates = [f.result() for f in futures] if pool else [_fit(inputs, rc, say, None, ())[0] for rc in replica_cfgs]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return TrainingResult(candidate.version, str(candidate.path), dataset_version, eval_hash, reused, candidate.manifest,
                          replicates, preference)


def _replicate_pool(workers: int) -> ProcessPoolExecutor:
    """Spawned processes for seed replicates, the cores shared between them and this process."""
    threads = max(1, (os.cpu_count() or 1) // (workers + 1))
    _set_threads(threads)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_set_threads, initargs=(threads,))


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _fit_quietly(inputs: _FitInputs, cfg: TrainingConfig) -> str:
    """A seed replicate in a worker process: the version it trained (or found intact)."""
    return _fit(inputs, cfg, lambda _msg: None, None, ())[0]


@dataclass(frozen=True)
class _FitInputs:
    home: FlywheelHome
    dataset_version: str
    train_path: Path
    messages: list[list[dict[str, str]]]
    weights: list[float | None]
    eval_hash: str | None
    force: bool
    validation_messages: list[list[dict[str, str]]]
    validation: dict[str, Any]  # ValidationSplit.summary()


def _fit(
    inputs: _FitInputs,
    cfg: TrainingConfig,
    say: Callable[[str], None],
    on_loss: Callable[[dict[str, float]], None] | None,
    callbacks: Sequence[TrainerCallback],
) -> tuple[str, Path, dict[str, Any], bool]:
    """Train one model version (or reuse an intact one): (version, folder, manifest, reused)."""
    home, dataset_version = inputs.home, inputs.dataset_version
    version = model_version_id(dataset_version, cfg, inputs.eval_hash)
    target = home.model(version)

    if not inputs.force and (target / "manifest.json").is_file():
        try:
            manifest = verify_adapter(target)
        except AdapterError as exc:
            say(f"existing {target} is unusable ({exc}): training it again")
        else:
            say(f"model version {version} already trained from the same inputs: reusing {target}")
            return version, target, manifest, True

    from transformers import set_seed

    plan = plan_device(cfg)
    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.base_model, home)
    data = tokenize_examples(
        tokenizer, inputs.messages, inputs.weights, max_length=cfg.max_length, seed=cfg.seed,
        source=str(inputs.train_path)
    )
    say(
        f"tokenized {data.counts['examples']} examples -> {data.counts['rows']} rows (weight repeats), "
        f"{data.total_tokens} tokens, {data.trained_tokens} trained ({data.trained_token_share:.1%}), route {data.mask_route}"
    )
    if cfg.lora.modules_to_save:
        say(f"warning: lora.modules_to_save {cfg.lora.modules_to_save} trains those modules in full; most vLLM "
            "versions refuse such adapters in --lora-modules")
    model, tokenizer = load_base(
        cfg.base_model, home, dtype=plan.dtype, attn_implementation=plan.attn_implementation, tokenizer=tokenizer
    )
    val_data = _validation_data(tokenizer, inputs, cfg, say)
    stopper = None
    if cfg.early_stopping_patience and val_data is None:
        say("warning: training.early_stopping_patience needs a validation split (none this run): early stopping is off")
    elif cfg.early_stopping_patience:
        stopper = early_stopping_callback(cfg.early_stopping_patience)
    points: list[dict[str, float]] = []
    val_points: list[dict[str, float]] = []
    params = training_params(cfg, version=version, dataset_version=dataset_version, eval_set_hash=inputs.eval_hash,
                             base_model_resolved=base_path(cfg.base_model, home), device=plan.device,
                             validation_examples=inputs.validation["examples"])
    with (tracked_run(version, params, {"flywheel.dataset_version": dataset_version}, say) as tracker,
          tempfile.TemporaryDirectory(prefix="flywheel-train-") as scratch):

        def on_point(point: dict[str, float]) -> None:
            tracker.train_point(point)
            if on_loss is not None:
                on_loss(point)

        def on_eval(point: dict[str, float]) -> None:
            tracker.val_point(point)
            say(f"epoch {point['epoch']:g} (step {point['step']}): validation loss {point['val_loss']:.4f}")

        curve = loss_curve_callback(points, val_points, on_point, on_eval)
        trainer = make_trainer(model, tokenizer, data, cfg, plan, scratch,
                               [curve, *([stopper] if stopper else []), *callbacks], eval_data=val_data)
        say(
            f"training on {plan.device} ({plan.dtype}, attn {plan.attn_implementation}, padding_free {plan.padding_free}): {trainer.packed_rows} packed rows"
        )
        start = time.perf_counter()
        output = trainer.train()
        wall = time.perf_counter() - start
        if val_data is not None and (not val_points or val_points[-1]["step"] != output.global_step):
            trainer.evaluate()  # the last epoch was partial (max_steps, fractional epochs): measure the end too
        restored = stopper is not None and stopper.restore_best(trainer.model)
        tokens_per_s = trainer.real_tokens / wall if wall > 0 else 0.0
        metrics = {
            "train_loss": float(output.training_loss),
            "final_loss": points[-1]["loss"] if points else None,
            "first_loss": points[0]["loss"] if points else None,
            "val_loss": (stopper.best_loss if stopper is not None and stopper.best_loss is not None
                         else val_points[-1]["val_loss"] if val_points else None),
            "steps": int(output.global_step),
            "train_runtime_s": round(wall, 3),
            "tokens_seen": int(trainer.real_tokens),
            "tokens_per_s": round(tokens_per_s, 1),
            "packed_rows": trainer.packed_rows,
            "pack_length": trainer.pack_length,
        }
        if plan.device == "cuda":
            import torch

            metrics["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        with atomic_dir(target) as tmp:
            trainer.model.save_pretrained(str(tmp))
            canonical_adapter_config(tmp / "adapter_config.json")
            for extra in ("README.md",):
                (tmp / extra).unlink(missing_ok=True)
            write_json(cfg.model_dump(mode="json"), tmp / "training_config.json")
            png = render_loss_curve(points, tmp / LOSS_PNG, title=f"{version} loss", val_points=val_points)
            manifest = {
                "version": version,
                "dataset_version": dataset_version,
                "eval_set_hash": inputs.eval_hash,
                "base_model": cfg.base_model,
                "base_model_resolved": base_path(cfg.base_model, home),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "device": asdict(plan),
                "data": data.summary(),
                "trained_token_share": round(data.trained_token_share, 6),
                "metrics": metrics,
                "tokens_per_s": metrics["tokens_per_s"],
                "loss_curve": downsample(points),
                "val_curve": val_points,
                "epochs": epoch_table(points, val_points),
                "validation": inputs.validation,
                "early_stopping": None if stopper is None else {
                    "patience": cfg.early_stopping_patience, "stopped_early": stopper.stopped_early,
                    "best_step": stopper.best_step, "best_val_loss": stopper.best_loss, "restored_best": restored},
                "tracking": {"mlflow_run_id": tracker.run_id, "mlflow_experiment_id": tracker.experiment_id}
                if tracker.run_id else None,
                "loss_curve_png": LOSS_PNG if png else None,
                "files": {name: file_sha256(tmp / name) for name in ADAPTER_FILES},
            }
            write_json(manifest, tmp / "manifest.json")
        tracker.finish(target, metrics)
    say(
        f"wrote {target} (loss {metrics['first_loss']} -> {metrics['final_loss']}, validation loss "
        f"{metrics['val_loss']}, {metrics['tokens_per_s']} tokens/s)"
    )
    return version, target, manifest, False


def _validation_data(
    tokenizer: PreTrainedTokenizerBase, inputs: _FitInputs, cfg: TrainingConfig, say: Callable[[str], None]
) -> TokenizedData | None:
    """The held-out examples tokenized like the training rows (each once: weights do not repeat them)."""
    if not inputs.validation_messages:
        return None
    try:
        return tokenize_examples(tokenizer, inputs.validation_messages, [1.0] * len(inputs.validation_messages),
                                 max_length=cfg.max_length, seed=cfg.seed, source=f"{inputs.train_path} (validation)")
    except NoTrainableTokensError as exc:
        say(f"warning: no validation loss: {exc}")
        return None
