"""Answers of a model on the eval items: the inference device, the model loaded for generation
(base or base + LoRA), batched greedy generation, and the champion's answers cached per eval set."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from flywheel.core.storage import FlywheelHome, read_table, write_parquet
from flywheel.evaluation.eval_set import EvalItem
from flywheel.models.artifact import ModelArtifact, load_adapter
from flywheel.models.base import load_base

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Loaded = tuple["PreTrainedModel", "PreTrainedTokenizerBase"]


def inference_device() -> tuple[str, str]:
    """(device, dtype) for generation: a GPU in bf16 (fp16 where bf16 is unsupported), else the CPU in fp32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "cpu", "float32"


def generation_model(home: FlywheelHome, model: ModelArtifact | str) -> Loaded:
    """A model version (base + its LoRA adapter) or a base model name on the inference device, in eval
    mode. On the CPU the weights load as saved (the path the tests and the demo score on)."""
    device, dtype = inference_device()
    load_dtype = dtype if device == "cuda" else None
    if isinstance(model, ModelArtifact):
        loaded, tokenizer = load_adapter(model, home, dtype=load_dtype, device=device)
    else:
        loaded, tokenizer = load_base(model, home, dtype=load_dtype, device=device)
    return loaded.eval(), tokenizer


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int = 16,
) -> list[str]:
    """Greedy answers for ChatML prompts: batched with left padding, each stopping at eos."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    eos = tokenizer.eos_token_id
    model.eval()
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        answers.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    return answers


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def champion_answers(
    home: FlywheelHome,
    champion_label: str,
    eval_hash: str,
    items: Sequence[EvalItem],
    max_new_tokens: int,
    load: Callable[[], Loaded],
    batch_size: int = 16,
) -> tuple[list[str], bool]:
    """The champion's answers, cached per (champion, eval hash, max_new_tokens) under
    `reports/champion_answers/`; `load()` gives (model, tokenizer) on a cache miss. Returns (answers, cached)."""
    cache = home.reports() / "champion_answers" / f"{_safe_name(champion_label)}__{eval_hash}__t{max_new_tokens}.parquet"
    if cache.exists():
        table = read_table(cache)
        by_id = dict(zip(table.column("example_id").to_pylist(), table.column("answer").to_pylist(), strict=True))
        if all(it.example_id in by_id for it in items):
            return [by_id[it.example_id] for it in items], True
    model, tokenizer = load()
    answers = generate_answers(model, tokenizer, [it.prompt for it in items], max_new_tokens, batch_size)
    del model
    write_parquet(pa.table({"example_id": [it.example_id for it in items], "answer": answers}), cache)
    return answers, False
