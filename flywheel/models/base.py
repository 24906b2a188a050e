"""Base models: any local path or hub id, or `tiny`, a few-layer Llama built locally from a config.

`load_base` is the one loader of a base model (training asks for the device plan's dtype and
attention kernel, generation for the inference device); `load_tokenizer` loads its tokenizer, so a
training run that tokenizes first loads it only once.

The tiny model is what the tests and the demo train: a byte-level tokenizer (every UTF-8 byte is a
token, so nothing needs downloading) with a ChatML chat template whose assistant turns are wrapped in
`{% generation %}` markers, so trl can mask the loss to assistant tokens.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flywheel.core.storage import FlywheelHome, StoragePath, atomic_dir, local_copy

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY = "tiny"
TINY_DIRNAME = "base-tiny"
IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Small enough to train in seconds on a laptop CPU, big enough to learn a handful of answers.
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "seed": 1234,
}


def build_tiny_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer with no merges (one token per byte) and a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
    )
    fast.add_special_tokens({"additional_special_tokens": [IM_START, IM_END], "pad_token": PAD})
    fast.chat_template = CHATML_TEMPLATE
    fast.model_max_length = TINY_CONFIG["max_position_embeddings"]
    return fast


def build_tiny_model(tokenizer: PreTrainedTokenizerBase, config: dict[str, Any] | None = None) -> PreTrainedModel:
    """A randomly initialised Llama-shaped causal LM (deterministic for a given seed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(TINY_CONFIG if config is None else config)
    seed = cfg.pop("seed", 1234)
    torch.manual_seed(seed)
    lcfg = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **cfg,
    )
    return LlamaForCausalLM(lcfg)


def save_tiny_base(target: StoragePath) -> StoragePath:
    """Build the tiny model + tokenizer and save them (atomically) as an ordinary HF model folder."""
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "flywheel_base.json").write_text(json.dumps({"kind": TINY, "config": TINY_CONFIG}, indent=2))
    return target


def base_path(base_model: str, home: FlywheelHome) -> str:
    """The path or hub id a base model name stands for: `tiny` is `home/models/base-tiny`."""
    return str(home.model(TINY_DIRNAME)) if base_model == TINY else base_model


def resolve_base(base_model: str, home: FlywheelHome) -> str:
    """`base_path` as transformers loads it, building the tiny model there the first time it is asked for
    (a home on object storage: the folder's local copy in the cache)."""
    if base_model != TINY:
        return base_model
    folder = home.model(TINY_DIRNAME)
    if not (folder / "flywheel_base.json").exists():
        save_tiny_base(folder)
    return str(local_copy(folder))


def load_tokenizer(base_model: str, home: FlywheelHome) -> PreTrainedTokenizerBase:
    """The base model's tokenizer; one without a pad token pads with its eos token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(base_model, home))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(
    base_model: str,
    home: FlywheelHome,
    *,
    dtype: str | Any = None,
    attn_implementation: str | None = None,
    device: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) of a base model name, path or hub id (`tiny` is built locally).

    `dtype` (a torch dtype or its name, e.g. "bfloat16") and `attn_implementation` are passed to
    `from_pretrained` when given (None: the weights' saved dtype, transformers' default kernel);
    `device` moves the model there. Pass the `tokenizer` already loaded to load it only once."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(resolve_base(base_model, home), **kwargs)
    if device is not None:
        model = model.to(device)
    return model, tokenizer if tokenizer is not None else load_tokenizer(base_model, home)
