"""Training throughput: flywheel's LoRA SFT path vs trl's SFTTrainer defaults, same model and data.

    python benchmarks/training.py                    # CPU: the tiny model
    python benchmarks/training.py --model qwen2-0.5b # GPU: Qwen2-0.5B shapes, random weights

Both variants train the same LoRA (r=16, alpha=32, all-linear) on the same synthetic chat examples
(variable lengths) with the same per-device batch size:
- defaults: plain `SFTConfig` (no packing, padding to the longest in the batch, default attention,
  gradient checkpointing on as trl defaults; bf16 autocast on GPU over fp32 weights as trl loads
  a model path, fp32 on CPU), the model passed as a path so trl loads it its own way.
- flywheel: `flywheel.training.trainer` (bf16 weights on GPU, assistant-only labels, best-fit packing,
  no padding, SDPA/flash attention by the device plan, no gradient checkpointing).
Each variant runs in its own subprocess (clean peak memory); tokens/s counts real (non-pad) tokens
over the timed steps after warm-up. MFU = 6 * N_params * tokens/s / peak bf16 dense FLOP/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # both variants: no busy-waiting OpenMP threads on a shared CPU

QWEN2_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
WORDS = "the a model answer data train token user value list item check order table field note step".split()


def synthetic_conversations(n: int, max_chars: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Chat examples of varied length (log-uniform), each fitting in `max_chars` bytes after templating."""
    rng = random.Random(seed)

    def text(chars: int) -> str:
        out: list[str] = []
        while sum(len(w) + 1 for w in out) < chars:
            out.append(rng.choice(WORDS))
        return " ".join(out)[:chars]

    convs = []
    budget = max_chars - 60  # template overhead
    for _ in range(n):
        total = int(min(budget, 32 * (budget / 32) ** rng.random()))
        prompt = max(8, int(total * rng.uniform(0.2, 0.7)))
        convs.append(
            [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": text(prompt)},
                {"role": "assistant", "content": text(max(8, total - prompt))},
            ]
        )
    return convs


def build_model_dir(kind: str, target: Path) -> dict[str, Any]:
    """Save a random-weight model + the byte-level tokenizer as an ordinary HF folder."""
    import torch

    from flywheel.models.base import TINY_CONFIG, build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    if kind == "tiny":
        model = build_tiny_model(tokenizer)
    else:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        torch.manual_seed(0)
        cfg = Qwen2Config(
            **QWEN2_05B, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
        )
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    n_params = sum(p.numel() for p in model.parameters())
    return {"params": n_params, "config": TINY_CONFIG if kind == "tiny" else QWEN2_05B}


class StepClock:
    """Records (time, tokens) at the end of every optimizer step, synchronising the GPU first."""

    def __init__(self, tokens: Any) -> None:
        self.tokens = tokens  # callable returning tokens seen so far
        self.marks: list[tuple[float, int]] = []

    def callback(self) -> Any:
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                clock.marks.append((time.perf_counter(), clock.tokens()))

        return Clock()

    def rate(self, warmup: int) -> tuple[float, int, float]:
        (t0, k0), (t1, k1) = self.marks[warmup - 1], self.marks[-1]
        return (k1 - k0) / (t1 - t0), k1 - k0, t1 - t0


def run_variant(variant: str, model_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from flywheel.config import TrainingConfig
    from flywheel.core.storage import FlywheelHome
    from flywheel.models.base import load_base
    from flywheel.training.data import tokenize_examples
    from flywheel.training.device import plan_device
    from flywheel.training.trainer import make_trainer

    cuda = torch.cuda.is_available()
    steps = args.warmup + args.steps
    convs = synthetic_conversations(args.examples, args.max_length, seed=1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    out_dir = tempfile.mkdtemp(prefix=f"bench-{variant}-")
    if variant == "defaults":
        sft = SFTConfig(
            output_dir=out_dir,
            max_steps=steps,
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
            **({} if cuda else {"bf16": False, "use_cpu": True}),
        )
        peft_cfg = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        )
        trainer = SFTTrainer(
            model=model_dir,
            args=sft,
            train_dataset=Dataset.from_list([{"messages": c} for c in convs]),
            processing_class=tokenizer,
            peft_config=peft_cfg,
        )
        clock = StepClock(lambda: trainer._total_train_tokens)
        settings = {
            "batch_size": sft.per_device_train_batch_size,
            "max_length": sft.max_length,
            "bf16": sft.bf16,
            "gradient_checkpointing": sft.gradient_checkpointing,
            "attn": trainer.model.config._attn_implementation,
            "dtype": str(next(trainer.model.parameters()).dtype),
        }
    else:
        cfg = TrainingConfig(
            base_model=model_dir,
            max_steps=steps,
            max_length=args.max_length,
            batch_size=args.batch_size,
            learning_rate=2e-4,
            attn_implementation=args.attn,
        )
        plan = plan_device(cfg)
        data = tokenize_examples(
            tokenizer, convs, [1.0] * len(convs), max_length=cfg.max_length, seed=cfg.seed
        )
        model, tokenizer = load_base(model_dir, FlywheelHome(out_dir), dtype=plan.dtype,
                                     attn_implementation=plan.attn_implementation)
        trainer = make_trainer(model, tokenizer, data, cfg, plan, out_dir)
        clock = StepClock(lambda: trainer.real_tokens)
        settings = {
            "batch_size": cfg.batch_size,
            "max_length": cfg.max_length,
            "pack_length": trainer.pack_length,
            "bf16": plan.bf16,
            "gradient_checkpointing": cfg.gradient_checkpointing,
            "attn": plan.attn_implementation,
            "padding_free": plan.padding_free,
            "dtype": plan.dtype,
        }
    trainer.add_callback(clock.callback())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    tokens_per_s, tokens, seconds = clock.rate(args.warmup)
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    return {
        "variant": variant,
        "tokens_per_s": tokens_per_s,
        "timed_tokens": tokens,
        "timed_s": seconds,
        "peak_mem_gib": peak,
        "peak_mem_kind": "cuda max_memory_allocated" if cuda else "process max RSS",
        "settings": settings,
    }


def device_peak_flops() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    return name, peak


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["tiny", "qwen2-0.5b"], default="tiny")
    parser.add_argument("--examples", type=int, default=None, help="default: 2000 (GPU) / 300 (CPU)")
    parser.add_argument("--max-length", type=int, default=None, help="default: 1024 (GPU) / 256 (CPU)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30 GPU / 8 CPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--attn", default="auto")
    parser.add_argument("--variants", default="defaults,flywheel")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    args.max_length = args.max_length or (1024 if cuda else 256)
    args.examples = args.examples or (2000 if cuda else 300)
    args.steps = args.steps or (30 if cuda else 8)
    if args.variant:  # child process: one variant, JSON on the last stdout line
        print(json.dumps(run_variant(args.variant, args.model_dir, args)), flush=True)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-model-") as model_dir:
        info = build_model_dir(args.model, Path(model_dir))
        if cuda:
            torch.cuda.empty_cache()
        results = []
        for variant in args.variants.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--model-dir",
                model_dir,
                "--model",
                args.model,
            ]
            cmd += [
                "--examples",
                str(args.examples),
                "--max-length",
                str(args.max_length),
                "--batch-size",
                str(args.batch_size),
            ]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--attn", args.attn]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            )
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-6000:], file=sys.stderr)
                raise SystemExit(f"variant {variant} failed")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    device, peak = device_peak_flops()
    n = info["params"]
    base = results[0]["tokens_per_s"]
    print(f"\nmodel: {args.model} ({n / 1e6:.1f}M params), device: {device}, torch {torch.__version__}")
    print(
        f"data: {args.examples} synthetic chats up to {args.max_length} tokens; {args.steps} timed steps after {args.warmup} warm-up\n"
    )
    header = f"{'variant':<10} {'tokens/s':>12} {'ratio':>7} {'MFU':>7} {'peak mem GiB':>13}  settings"
    print(header)
    print("-" * len(header))
    for r in results:
        mfu = 6 * n * r["tokens_per_s"] / peak if peak else None
        r["mfu"] = mfu
        r["ratio_to_defaults"] = r["tokens_per_s"] / base
        mfu_s = f"{mfu:7.1%}" if mfu is not None else "    n/a"
        print(
            f"{r['variant']:<10} {r['tokens_per_s']:12,.0f} {r['ratio_to_defaults']:6.2f}x {mfu_s} {r['peak_mem_gib']:13.2f}  {json.dumps(r['settings'])}"
        )
    print(
        f"\npeak memory: {results[0]['peak_mem_kind']}; MFU counts 6*N FLOPs per token (LoRA does ~4N: frozen weights get no gradient)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"model": args.model, "params": n, "device": device, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
