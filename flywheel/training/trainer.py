"""LoRA SFT of the base model on a dataset version (peft + trl's SFTTrainer).

Entry points:
- `train(request) -> TrainingResult`: the whole run; writes `models/<version>/` atomically (adapter,
  `training_config.json`, `manifest.json`, `loss_curve.png`) and `models/candidate.json`.
- `python -m flywheel.training CONFIG_JSON` (a JSON file path or an inline JSON object of
  `TrainingRequest`): the same, run as its own process. Launched by Dagster Pipes it streams logs
  and reports the materialization (loss curve, tokens/s, path, version) back; standalone it prints
  the result as JSON. The same command runs in a GPU pod.

The data path (chat template -> assistant-only labels -> weight repeats -> packing) lives in
`flywheel.training.data`; this module owns the device plan, the trainer, artifacts and versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from flywheel.config import TrainingConfig
from flywheel.core.storage import FlywheelHome, atomic_dir, write_json
from flywheel.models.base import resolve_base
from flywheel.training.data import (
    IGNORE_INDEX,
    TokenizedData,
    TrainingDataError,
    check_eval_leaks,
    pack_rows,
    tokenize_examples,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
CANDIDATE_FILE = "candidate.json"
LOSS_PNG = "loss_curve.png"
MAX_CURVE_POINTS = 200


class AdapterError(RuntimeError):
    """A model folder whose adapter is missing, corrupted or does not match its manifest."""


class TrainingRequest(BaseModel):
    """Everything one training run needs; serialisable so it can cross a process (Pipes) boundary."""

    model_config = ConfigDict(extra="forbid")

    home: str = Field(..., description="FLYWHEEL_HOME of the run")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    dataset_version: str | None = Field(None, description="default: the id in datasets/LATEST")
    eval_set_path: str | None = Field(
        None, description="fixed eval set Parquet (EXAMPLE_SCHEMA); None skips the leak check"
    )
    eval_set_hash: str | None = Field(
        None, description="content hash of the eval set (default: read beside it or hashed)"
    )
    force: bool = Field(False, description="retrain even when models/<version>/ already exists")


@dataclass
class TrainingResult:
    version: str
    path: str
    dataset_version: str
    eval_set_hash: str | None
    reused: bool
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- device plan -----------------------------------------------------------------------------
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


# --- batching --------------------------------------------------------------------------------
class PackedCollator:
    """Batches packed rows (`input_ids`, `labels`, `seq_lengths`) without an attention mask.

    Position ids restart at every example, so transformers builds a block-diagonal causal mask (SDPA,
    eager) or varlen boundaries (flash attention); right padding needs no mask in causal training.
    `padding_free` flattens the batch into one row (best with flash attention). The first token of
    every example is never a label (it would be predicted from the previous example)."""

    def __init__(
        self, pad_token_id: int, padding_free: bool = False, pad_to_multiple_of: int | None = None
    ) -> None:
        self.pad_token_id = pad_token_id
        self.padding_free = padding_free
        self.pad_to_multiple_of = pad_to_multiple_of

    def _pad_len(self, n: int) -> int:
        m = self.pad_to_multiple_of
        return n if not m else int(math.ceil(n / m) * m)

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = []
        for ex in examples:
            lengths = ex.get("seq_lengths") or [len(ex["input_ids"])]
            pos = [p for n in lengths for p in range(n)]
            rows.append((list(ex["input_ids"]), list(ex["labels"]), pos))
        if self.padding_free:
            rows = [tuple(sum((list(r[k]) for r in rows), []) for k in range(3))]
        width = self._pad_len(max(len(r[0]) for r in rows))
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        real = 0
        for i, (r_ids, r_labels, r_pos) in enumerate(rows):
            n = len(r_ids)
            real += n
            ids[i, :n] = torch.tensor(r_ids)
            labels[i, :n] = torch.tensor(r_labels)
            pos[i, :n] = torch.tensor(r_pos)
            if width > n:  # padding forms its own "sequence" so no real token attends to it
                pos[i, n:] = torch.arange(width - n)
        labels[pos == 0] = IGNORE_INDEX
        out: dict[str, Any] = {"input_ids": ids, "labels": labels, "position_ids": pos, "real_tokens": real}
        if self.padding_free:
            starts = (pos[0] == 0).nonzero().flatten()
            cu = torch.cat([starts, torch.tensor([width])]).to(torch.int32)
            out["cu_seq_lens_q"] = out["cu_seq_lens_k"] = cu
            out["max_length_q"] = out["max_length_k"] = int(cu.diff().max())
        return out


# --- trainer ---------------------------------------------------------------------------------
def _loss_curve_callback(
    points: list[dict[str, float]], on_point: Callable[[dict[str, float]], None] | None
) -> TrainerCallback:
    from transformers import TrainerCallback

    class LossCurve(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
        ) -> None:
            if logs and "loss" in logs:
                point = {
                    "step": int(state.global_step),
                    "epoch": round(float(state.epoch or 0), 4),
                    "loss": float(logs["loss"]),
                }
                if "learning_rate" in logs:
                    point["lr"] = float(logs["learning_rate"])
                points.append(point)
                if on_point is not None:
                    on_point(point)

    return LossCurve()


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


def sft_config(cfg: TrainingConfig, plan: DevicePlan, output_dir: str, total_rows: int) -> Any:
    """The trl SFTConfig of this training path (pre-tokenized, pre-packed rows; our collator)."""
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
        eval_strategy="no",
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
) -> Any:
    """An SFTTrainer over packed, assistant-masked rows with LoRA attached to `model`."""
    from datasets import Dataset
    from trl import SFTTrainer

    length = pack_length(cfg, plan, data)
    rows = (
        pack_rows(data.rows, length)
        if cfg.packing
        else [{**r, "seq_lengths": [len(r["input_ids"])]} for r in data.rows]
    )
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

    collator = PackedCollator(
        tokenizer.pad_token_id, padding_free=plan.padding_free, pad_to_multiple_of=plan.pad_to_multiple_of
    )
    trainer = FlywheelSFTTrainer(
        model=peft_model,
        args=sft_config(cfg, plan, output_dir, len(rows)),
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=list(callbacks),
    )
    trainer.packed_rows = len(rows)
    trainer.pack_length = length if cfg.packing else None
    return trainer


def load_base_for_training(
    base_model: str, home: FlywheelHome, plan: DevicePlan
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """(model on the plan's device and dtype, tokenizer, resolved path)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base(base_model, home)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, plan.dtype), attn_implementation=plan.attn_implementation
    )
    return model, tokenizer, path


# --- versions and artifacts ------------------------------------------------------------------
def _version_config(cfg: TrainingConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json", exclude={"device_tags"})


def model_version(dataset_version: str, cfg: TrainingConfig, eval_set_hash: str | None) -> str:
    """Content id of a training run: same dataset, config, base model and eval set -> same id."""
    key = {
        "dataset_version": dataset_version,
        "training": _version_config(cfg),
        "base_model": cfg.base_model,
        "eval_set_hash": eval_set_hash,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_adapter_config(path: Path) -> dict[str, Any]:
    """Rewrite peft's `adapter_config.json` with `target_modules` sorted: peft saves the set it resolved
    from `all-linear` in hash order, which differs between processes (the same adapter, different bytes)."""
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    return config


def verify_adapter(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a model folder: adapter files present, config parseable, tensors readable, hashes match
    the manifest. Returns the manifest; raises `AdapterError` naming the file and the reason."""
    from safetensors import safe_open

    folder = Path(path)
    manifest_path = folder / "manifest.json"
    for name in (*ADAPTER_FILES, "manifest.json"):
        if not (folder / name).is_file():
            raise AdapterError(f"{folder / name}: missing (not a complete flywheel model folder)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{folder}: corrupted JSON ({exc})") from None
    for name, expected in manifest.get("files", {}).items():
        actual = _sha256(folder / name) if (folder / name).is_file() else None
        if actual != expected:
            raise AdapterError(
                f"{folder / name}: corrupted (sha256 {actual} does not match the manifest's {expected})"
            )
    try:
        with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as fh:
            if not list(fh.keys()):
                raise AdapterError(f"{folder / 'adapter_model.safetensors'}: holds no tensors")
    except AdapterError:
        raise
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise AdapterError(f"{folder / 'adapter_model.safetensors'}: corrupted ({exc})") from None
    return manifest


def load_adapter(
    path: str | os.PathLike[str], home: FlywheelHome, dtype: Any = None
) -> tuple[Any, PreTrainedTokenizerBase]:
    """(PeftModel with the adapter of `models/<version>/`, tokenizer), after `verify_adapter`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = verify_adapter(path)
    base_path = resolve_base(manifest["base_model"], home)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = {"dtype": dtype} if dtype is not None else {}
    base = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    return PeftModel.from_pretrained(base, str(path)), tokenizer


def render_loss_curve(
    points: Sequence[dict[str, float]], target: Path, title: str = "training loss"
) -> Path | None:
    """A PNG of loss over steps (matplotlib Agg); None when matplotlib is missing or no points."""
    if not points or importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(
        [p["step"] for p in points], [p["loss"] for p in points], marker="." if len(points) < 40 else None
    )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, format="png")
    plt.close(fig)
    return target


def _downsample(points: list[dict[str, float]], n: int = MAX_CURVE_POINTS) -> list[dict[str, float]]:
    if len(points) <= n:
        return points
    stride = len(points) / n
    picked = [points[int(i * stride)] for i in range(n - 1)]
    return [*picked, points[-1]]


# --- inputs ----------------------------------------------------------------------------------
def latest_dataset_version(home: FlywheelHome) -> str:
    latest = home.path("datasets", "LATEST")
    if not latest.is_file():
        raise TrainingDataError(
            f"{latest}: missing: no dataset version to train on (materialize training_dataset first)"
        )
    version = latest.read_text(encoding="utf-8").strip()
    if not version:
        raise TrainingDataError(f"{latest}: empty")
    return version


def eval_set_hash(eval_set_path: Path) -> str:
    """The eval set's `content_hash` from the JSON beside it (`current.json`), else the file's sha256."""
    meta = eval_set_path.with_suffix(".json")
    if meta.is_file():
        value = json.loads(meta.read_text(encoding="utf-8")).get("content_hash")
        if value:
            return str(value)
    return _sha256(eval_set_path)[:16]


def _read_messages(path: Path) -> tuple[list[list[dict[str, str]]], list[float | None], list[str]]:
    if not path.is_file():
        raise TrainingDataError(f"{path}: missing")
    table = pq.read_table(path)
    if "messages" not in table.column_names:
        raise TrainingDataError(f"{path}: no `messages` column (expected EXAMPLE_SCHEMA)")
    messages = [
        [{"role": m["role"], "content": m["content"]} for m in (msgs or [])]
        for msgs in table.column("messages").to_pylist()
    ]
    weights = table.column("weight").to_pylist() if "weight" in table.column_names else [1.0] * len(messages)
    ids = (
        table.column("example_id").to_pylist()
        if "example_id" in table.column_names
        else [str(i) for i in range(len(messages))]
    )
    return messages, weights, ids


# --- the run ---------------------------------------------------------------------------------
def train(
    request: TrainingRequest,
    *,
    log: Callable[[str], None] | None = None,
    on_loss: Callable[[dict[str, float]], None] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainingResult:
    """LoRA SFT on a dataset version; writes `models/<version>/` atomically and `models/candidate.json`.

    Refuses (before any training) an eval-set leak and a dataset whose assistant mask is empty.
    Same request on CPU -> the same version id and bit-identical adapter tensors."""
    say = log or (lambda msg: None)
    cfg = request.training
    home = FlywheelHome(request.home)
    dataset_version = request.dataset_version or latest_dataset_version(home)
    train_path = home.dataset(dataset_version) / "train.parquet"
    eval_path = Path(request.eval_set_path) if request.eval_set_path else None
    if eval_path is not None and not eval_path.is_file():
        raise TrainingDataError(f"{eval_path}: fixed eval set missing (materialize fixed_eval_set first)")
    eval_hash = request.eval_set_hash or (eval_set_hash(eval_path) if eval_path else None)
    version = model_version(dataset_version, cfg, eval_hash)
    target = home.model(version)

    messages, weights, example_ids = _read_messages(train_path)
    if eval_path is not None:
        eval_messages, _, _ = _read_messages(eval_path)
        check_eval_leaks(
            messages,
            eval_messages,
            train_source=str(train_path),
            eval_source=str(eval_path),
            example_ids=example_ids,
        )
        say(f"leak check: {len(messages)} training inputs vs {len(eval_messages)} eval inputs, 0 leaks")

    if not request.force and (target / "manifest.json").is_file():
        try:
            manifest = verify_adapter(target)
        except AdapterError as exc:
            say(f"existing {target} is unusable ({exc}): training it again")
        else:
            say(f"model version {version} already trained from the same inputs: reusing {target}")
            _write_candidate(home, version, target, manifest)
            return TrainingResult(version, str(target), dataset_version, eval_hash, True, manifest)

    from transformers import AutoTokenizer, set_seed

    plan = plan_device(cfg)
    set_seed(cfg.seed)
    resolved = resolve_base(cfg.base_model, home)
    tokenizer = AutoTokenizer.from_pretrained(resolved)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    data = tokenize_examples(
        tokenizer, messages, weights, max_length=cfg.max_length, seed=cfg.seed, source=str(train_path)
    )
    say(
        f"tokenized {data.counts['examples']} examples -> {data.counts['rows']} rows (weight repeats), "
        f"{data.total_tokens} tokens, {data.trained_tokens} trained ({data.trained_token_share:.1%}), route {data.mask_route}"
    )
    if cfg.lora.modules_to_save:
        say(f"warning: lora.modules_to_save {cfg.lora.modules_to_save} trains those modules in full; most vLLM "
            "versions refuse such adapters in --lora-modules")
    model, tokenizer, resolved = load_base_for_training(cfg.base_model, home, plan)
    points: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="flywheel-train-") as scratch:
        trainer = make_trainer(
            model, tokenizer, data, cfg, plan, scratch, [_loss_curve_callback(points, on_loss), *callbacks]
        )
        say(
            f"training on {plan.device} ({plan.dtype}, attn {plan.attn_implementation}, padding_free {plan.padding_free}): {trainer.packed_rows} packed rows"
        )
        start = time.perf_counter()
        output = trainer.train()
        wall = time.perf_counter() - start
        tokens_per_s = trainer.real_tokens / wall if wall > 0 else 0.0
        metrics = {
            "train_loss": float(output.training_loss),
            "final_loss": points[-1]["loss"] if points else None,
            "first_loss": points[0]["loss"] if points else None,
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
            png = render_loss_curve(points, tmp / LOSS_PNG, title=f"{version} loss")
            manifest = {
                "version": version,
                "dataset_version": dataset_version,
                "eval_set_hash": eval_hash,
                "base_model": cfg.base_model,
                "base_model_resolved": resolved,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "device": asdict(plan),
                "data": data.summary(),
                "trained_token_share": round(data.trained_token_share, 6),
                "metrics": metrics,
                "tokens_per_s": metrics["tokens_per_s"],
                "loss_curve": _downsample(points),
                "loss_curve_png": LOSS_PNG if png else None,
                "files": {name: _sha256(tmp / name) for name in ADAPTER_FILES},
            }
            write_json(manifest, tmp / "manifest.json")
    _write_candidate(home, version, target, manifest)
    say(
        f"wrote {target} (loss {metrics['first_loss']} -> {metrics['final_loss']}, {metrics['tokens_per_s']} tokens/s)"
    )
    return TrainingResult(version, str(target), dataset_version, eval_hash, False, manifest)


def _write_candidate(home: FlywheelHome, version: str, target: Path, manifest: dict[str, Any]) -> None:
    write_json(
        {
            "version": version,
            "path": str(target),
            "dataset_version": manifest.get("dataset_version"),
            "eval_set_hash": manifest.get("eval_set_hash"),
            "base_model": manifest.get("base_model"),
            "created": manifest.get("created"),
        },
        home.model(CANDIDATE_FILE),
    )


def read_candidate(home: FlywheelHome) -> dict[str, Any] | None:
    """`models/candidate.json` ({version, path, ...}) or None when nothing was trained yet."""
    path = home.model(CANDIDATE_FILE)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# --- process entry point (Dagster Pipes or standalone) ---------------------------------------
def parse_request(arg: str) -> TrainingRequest:
    """A request from a JSON file path or an inline JSON object."""
    text = arg.strip()
    if not text.startswith("{"):
        text = Path(arg).read_text(encoding="utf-8")
    return TrainingRequest.model_validate_json(text)


def pipes_metadata(result: TrainingResult) -> dict[str, Any]:
    """The materialization metadata reported through Pipes (raw values with Pipes types)."""
    m = result.manifest
    metrics = m.get("metrics", {})
    return {
        "version": {"raw_value": result.version, "type": "text"},
        "path": {"raw_value": result.path, "type": "path"},
        "dataset_version": {"raw_value": result.dataset_version, "type": "text"},
        "eval_set_hash": {"raw_value": result.eval_set_hash or "", "type": "text"},
        "base_model": {"raw_value": m.get("base_model", ""), "type": "text"},
        "reused": {"raw_value": result.reused, "type": "bool"},
        "train_loss": {"raw_value": metrics.get("train_loss"), "type": "float"},
        "final_loss": {"raw_value": metrics.get("final_loss"), "type": "float"},
        "steps": {"raw_value": metrics.get("steps"), "type": "int"},
        "tokens_per_s": {"raw_value": metrics.get("tokens_per_s"), "type": "float"},
        "train_runtime_s": {"raw_value": metrics.get("train_runtime_s"), "type": "float"},
        "trained_token_share": {"raw_value": m.get("trained_token_share"), "type": "float"},
        "examples": {"raw_value": m.get("data", {}).get("examples"), "type": "int"},
        "rows": {"raw_value": m.get("data", {}).get("rows"), "type": "int"},
        "device": {"raw_value": m.get("device", {}), "type": "json"},
        "loss_curve": {"raw_value": {"points": m.get("loss_curve", [])}, "type": "json"},
        "loss_curve_png": {"raw_value": str(Path(result.path) / LOSS_PNG), "type": "path"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(
            "usage: python -m flywheel.training CONFIG_JSON (a file path or an inline JSON object)",
            file=sys.stderr,
        )
        return 2
    request = parse_request(args[0])
    # Before torch loads OpenMP: busy-waiting worker threads slow CPU training ~10x on a shared machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if importlib.util.find_spec("dagster_pipes") is not None:
        from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

        if PipesEnvVarParamsLoader().is_dagster_pipes_process():
            with open_dagster_pipes() as pipes:
                result = train(
                    request,
                    log=pipes.log.info,
                    on_loss=lambda p: pipes.log.info(f"step {p['step']} loss {p['loss']:.4f}"),
                )
                pipes.report_asset_materialization(
                    metadata=pipes_metadata(result), data_version=result.version
                )
            return 0
    result = train(request, log=lambda msg: print(msg, file=sys.stderr))
    print(
        json.dumps(
            {k: v for k, v in result.to_dict().items() if k != "manifest"}
            | {"metrics": result.manifest.get("metrics")}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
