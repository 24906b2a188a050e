"""Scoring a candidate against the champion on the fixed eval set, per slice, and the gate decision.

Steps, each its own function: load the eval file (`load_eval_set`), hash and describe it
(`eval_set_info`), load the candidate (`load_adapter_model`, base + LoRA via peft, a broken adapter
names its file), generate answers (`generate_answers`: batched, left padding, greedy, stop at eos),
score them (`score_answers`), summarise with paired bootstrap CIs (`summarize`), decide (`gate`), and
look for eval items in the candidate's training data (`find_eval_leaks`). `evaluate_candidate` runs
them in order for the `candidate_evaluation` asset.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from flywheel.config import EvaluationConfig, ProjectConfig
from flywheel.core.records import EXAMPLE_SCHEMA, SOURCES, examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_json, write_parquet
from flywheel.core.text import final_answer, last_user_text
from flywheel.evaluation.metrics import METRIC_FUNCTIONS, FormatRule, LLMJudge, paired_bootstrap
from flywheel.training.data import find_eval_leaks as training_leaks

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

NO_SLICE = "(none)"
BOOTSTRAP_SEED = 0
QUARANTINE_SCHEMA = pa.schema(
    [("source_file", pa.string()), ("line", pa.int64()), ("reason", pa.string()), ("detail", pa.string()), ("raw", pa.string())]
)


class EvalSetError(ValueError):
    """The eval file cannot be used at all (missing, unreadable, mixed formats)."""


class AdapterLoadError(RuntimeError):
    """A model version whose adapter files are missing or corrupt (the message names the file)."""


# --- the fixed eval set ----------------------------------------------------------------------
@dataclass
class EvalSetLoad:
    """An eval file read into EXAMPLE_SCHEMA rows plus the rows that could not be used (with reasons)."""

    path: Path
    format: str
    table: pa.Table
    invalid: list[dict[str, Any]]

    @property
    def read(self) -> int:
        return self.table.num_rows + len(self.invalid)


def _slice_of(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    value = raw.get("slice")
    if value is None:
        meta = raw.get("metadata")
        value = meta.get("slice") if isinstance(meta, dict) else None
    if isinstance(value, list):
        value = ",".join(str(v) for v in value) if value else None
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def load_eval_set(path: str | Path, max_tokens: int = 4096) -> EvalSetLoad:
    """Read the user's eval file (ChatML, ShareGPT or Alpaca) into example rows with their slice.

    Each row needs a final assistant turn (the reference answer); rows that fail validation are
    returned in `invalid` with file, line/row and reason, never dropped silently."""
    from flywheel.formats import FormatFileError, load_file

    path = Path(path)
    if not path.exists():
        raise EvalSetError(f"{path}: eval set file not found (config evaluation.eval_set)")
    try:
        report = load_file(path, fmt="auto", max_tokens=max_tokens)
    except FormatFileError as exc:
        message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
        raise EvalSetError(f"{message} (the fixed eval set needs 100-200 examples, each with a `slice`)") from exc
    rows: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for r in report.rows:
        line = r.line if getattr(r, "line", None) else r.index + 1
        raw_json = json.dumps(r.raw, ensure_ascii=False, default=str)
        reason = None
        if not r.ok or r.messages is None:
            reason, detail = "invalid_row", "; ".join(r.errors) or "not a valid conversation"
        elif not final_answer(r.messages):
            reason, detail = "no_reference", "the last turn must be the assistant's reference answer"
        if reason is None:
            raw = r.raw if isinstance(r.raw, dict) else {}
            source = raw.get("source") if raw.get("source") in SOURCES else "human"
            ex = make_example(r.messages, source, slice=_slice_of(raw),
                              lineage={"file": path.name, "row": r.index, "line": line})
            if ex["example_id"] in seen:
                reason, detail = "duplicate", f"same conversation as row {seen[ex['example_id']]}"
            else:
                seen[ex["example_id"]] = line
                rows.append(ex)
                continue
        invalid.append({"source_file": str(path), "line": line, "reason": reason, "detail": detail, "raw": raw_json})
    return EvalSetLoad(path=path, format=report.format, table=examples_table(rows), invalid=invalid)


def eval_set_hash(table: pa.Table) -> str:
    """Content hash of an eval set: its conversations and slice tags, independent of row order."""
    ids = table.column("example_id").to_pylist()
    slices = table.column("slice").to_pylist()
    canon = "\n".join(sorted(f"{i}\t{s or ''}" for i, s in zip(ids, slices, strict=True)))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def slice_counts(table: pa.Table) -> dict[str, int]:
    """Items per slice (untagged items under `(none)`)."""
    return dict(sorted(Counter(s or NO_SLICE for s in table.column("slice").to_pylist()).items()))


def eval_set_info(table: pa.Table, eval_set_version: int) -> dict[str, Any]:
    """The `current.json` of the fixed eval set."""
    return {
        "content_hash": eval_set_hash(table),
        "eval_set_version": eval_set_version,
        "items": table.num_rows,
        "slices": slice_counts(table),
    }


@dataclass(frozen=True)
class EvalItem:
    example_id: str
    slice: str
    prompt: list[dict[str, str]]
    reference: str

    @property
    def question(self) -> str:
        return last_user_text(self.prompt)


def eval_items(table: pa.Table) -> list[EvalItem]:
    """Eval rows as (prompt = every turn but the last, reference = the final assistant turn)."""
    items = []
    for row in table.select(["example_id", "messages", "slice"]).to_pylist():
        msgs = row["messages"]
        items.append(EvalItem(row["example_id"], row["slice"] or NO_SLICE, msgs[:-1], final_answer(msgs)))
    return items


# --- leaks -----------------------------------------------------------------------------------
def find_eval_leaks(eval_table: pa.Table, train_table: pa.Table) -> list[dict[str, str]]:
    """Eval items whose input (last user turn, normalised) also appears as a training input: the same
    check training runs before its first step (`training_data.find_eval_leaks`), from the eval side."""
    evals = eval_table.select(["example_id", "messages"]).to_pylist()
    leaked = {lk.eval_row for lk in training_leaks(train_table.column("messages").to_pylist(), [r["messages"] for r in evals])}
    return [{"example_id": evals[i]["example_id"], "input": last_user_text(evals[i]["messages"])} for i in sorted(leaked)]


def training_data_leaks(home: FlywheelHome, dataset_version: str | None, eval_table: pa.Table) -> tuple[list[dict[str, str]], str | None]:
    """(leaked eval items, problem) for a candidate's dataset version; `problem` says why the training
    data could not be checked (which is itself a refusal)."""
    if not dataset_version:
        return [], "the candidate's manifest names no dataset_version, so its training data cannot be checked for eval leaks"
    train_path = home.dataset(dataset_version) / "train.parquet"
    if not train_path.exists():
        return [], f"{train_path}: training data of the candidate not found, so it cannot be checked for eval leaks"
    return find_eval_leaks(eval_table, pq.read_table(train_path, columns=["messages"])), None


# --- models ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelVersionRef:
    """A trained model version on disk: `models/<version>/` with adapter files and manifest.json."""

    version: str
    path: Path
    manifest: dict[str, Any]

    @property
    def base_model(self) -> str:
        return str(self.manifest.get("base_model") or "tiny")

    @property
    def dataset_version(self) -> str | None:
        return self.manifest.get("dataset_version")


def model_version(home: FlywheelHome, version: str, path: str | Path | None = None) -> ModelVersionRef:
    """A complete model version folder (never a hidden temp folder of an interrupted run)."""
    folder = Path(path) if path else home.model(version)
    if not folder.is_absolute():
        folder = home.root / folder
    if folder.name.startswith(".") or folder.name.endswith(".tmp"):
        raise AdapterLoadError(f"{folder}: a temporary folder of an unfinished training run, not a model version")
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise AdapterLoadError(f"{manifest_path}: missing; model version {version!r} is incomplete or absent")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AdapterLoadError(f"{manifest_path}: not valid JSON ({exc})") from exc
    return ModelVersionRef(version=version, path=folder, manifest=manifest)


def candidate_pointer(home: FlywheelHome) -> ModelVersionRef:
    """The model version named by `models/candidate.json` ({"version", "path"})."""
    pointer = home.model("candidate.json")
    if not pointer.exists():
        raise AdapterLoadError(f"{pointer}: no candidate model yet (materialize lora_adapter first)")
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
        version = str(data["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AdapterLoadError(f"{pointer}: expected JSON with a `version` ({exc})") from exc
    return model_version(home, version, data.get("path"))


def check_adapter_files(folder: Path, manifest: dict[str, Any] | None = None) -> None:
    """Fail with the file's name when the adapter config or weights are missing, unreadable, or differ
    from the sha256 the manifest recorded for them (`files`: {name: sha256})."""
    for name, expected in ((manifest or {}).get("files") or {}).items():
        path = folder / name
        if not path.exists():
            raise AdapterLoadError(f"{path}: listed in the manifest but missing")
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise AdapterLoadError(f"{path}: corrupted (sha256 {digest.hexdigest()[:12]}... does not match the manifest)")
    config = folder / "adapter_config.json"
    if not config.exists():
        raise AdapterLoadError(f"{config}: adapter config missing")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AdapterLoadError(f"{config}: corrupt adapter config ({exc})") from exc
    weights = folder / "adapter_model.safetensors"
    if not weights.exists():
        legacy = folder / "adapter_model.bin"
        if legacy.exists():
            return
        raise AdapterLoadError(f"{weights}: adapter weights missing")
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            for key in fh.keys():
                fh.get_tensor(key)
    except Exception as exc:  # safetensors raises several error types for damaged files
        raise AdapterLoadError(f"{weights}: corrupt adapter weights ({type(exc).__name__}: {exc})") from exc


def inference_device() -> tuple[str, str]:
    """(device, dtype) for generation: a GPU in bf16 (fp16 where bf16 is unsupported), else the CPU in fp32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "cpu", "float32"


def load_base_for_generation(base_model: str, home: FlywheelHome) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model on the inference device, in eval mode."""
    import torch

    from flywheel.models.base import load_base

    device, dtype = inference_device()
    # on the CPU the weights load as saved (the path the tests and the demo score on)
    model, tokenizer = load_base(base_model, home, dtype=getattr(torch, dtype) if device == "cuda" else None)
    return model.to(device).eval(), tokenizer


def load_adapter_model(ref: ModelVersionRef, home: FlywheelHome) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Base model + the version's LoRA adapter (peft) on the inference device, in eval mode."""
    from peft import PeftModel

    check_adapter_files(ref.path, ref.manifest)
    model, tokenizer = load_base_for_generation(ref.base_model, home)
    try:
        model = PeftModel.from_pretrained(model, str(ref.path))
    except Exception as exc:
        raise AdapterLoadError(f"{ref.path / 'adapter_model.safetensors'}: cannot be applied to base "
                               f"{ref.base_model!r} ({type(exc).__name__}: {exc})") from exc
    model.eval()
    return model, tokenizer


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
    load: Any,
    batch_size: int = 16,
) -> tuple[list[str], bool]:
    """The champion's answers, cached per (champion, eval hash, max_new_tokens) under
    `reports/champion_answers/`; `load()` gives (model, tokenizer) on a cache miss. Returns (answers, cached)."""
    cache = home.reports() / "champion_answers" / f"{_safe_name(champion_label)}__{eval_hash}__t{max_new_tokens}.parquet"
    if cache.exists():
        table = pq.read_table(cache)
        by_id = dict(zip(table.column("example_id").to_pylist(), table.column("answer").to_pylist(), strict=True))
        if all(it.example_id in by_id for it in items):
            return [by_id[it.example_id] for it in items], True
    model, tokenizer = load()
    answers = generate_answers(model, tokenizer, [it.prompt for it in items], max_new_tokens, batch_size)
    del model
    write_parquet(pa.table({"example_id": [it.example_id for it in items], "answer": answers}), cache)
    return answers, False


# --- scoring ---------------------------------------------------------------------------------
def score_answers(
    items: Sequence[EvalItem],
    answers: Sequence[str],
    metrics: Sequence[str],
    format_rule: FormatRule | None = None,
    judge: LLMJudge | None = None,
) -> dict[str, list[float]]:
    """Per-item scores (0-1) of each metric; `judge` is needed when `judge` is among the metrics."""
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} eval items but {len(answers)} answers")
    rule = format_rule or FormatRule()
    scores: dict[str, list[float]] = {}
    for metric in metrics:
        if metric in METRIC_FUNCTIONS:
            fn = METRIC_FUNCTIONS[metric]
            scores[metric] = [fn(a, it.reference) for it, a in zip(items, answers, strict=True)]
        elif metric == "format":
            scores[metric] = [rule.score(a) for a in answers]
        elif metric == "judge":
            if judge is None:
                raise ValueError("metric `judge` needs evaluation.judge (base_url, model) in flywheel.yaml")
            scores[metric] = [judge.score(it.question, it.reference, a) for it, a in zip(items, answers, strict=True)]
        else:
            raise ValueError(f"unknown metric {metric!r}")
    return scores


def summarize(
    items: Sequence[EvalItem],
    candidate_scores: dict[str, list[float]],
    champion_scores: dict[str, list[float]],
    bootstrap_samples: int,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Overall and per-slice means of both models with the paired bootstrap CI of the difference."""
    overall = {m: paired_bootstrap(candidate_scores[m], champion_scores[m], bootstrap_samples, seed).as_dict()
               for m in candidate_scores}
    slices: dict[str, Any] = {}
    for s in sorted({it.slice for it in items}):
        idx = [i for i, it in enumerate(items) if it.slice == s]
        slices[s] = {
            "n": len(idx),
            "metrics": {m: paired_bootstrap([candidate_scores[m][i] for i in idx], [champion_scores[m][i] for i in idx],
                                            bootstrap_samples, seed).as_dict()
                        for m in candidate_scores},
        }
    unparsed = {m: {"candidate": sum(math.isnan(x) for x in candidate_scores[m]),
                    "champion": sum(math.isnan(x) for x in champion_scores[m])}
                for m in candidate_scores if any(math.isnan(x) for x in candidate_scores[m] + champion_scores[m])}
    return {"overall": overall, "slices": slices, "unscored": unparsed}


# --- gate ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateDecision:
    """Whether the candidate may replace the champion, and why (failures, or why it passed)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


def gate(summary: dict[str, Any], config: EvaluationConfig, leaks: Sequence[dict[str, str]] = (),
         leak_problem: str | None = None) -> GateDecision:
    """The promotion rule: the primary metric beats the champion (the base model for the first model)
    by more than 0 and at least `min_improvement`; no slice drops by more than `slice_tolerance`; no
    eval item is in the candidate's training data."""
    primary = config.primary_metric
    reasons: list[str] = []
    versus = f"base model {summary.get('base_model')}" if summary.get("champion_is_base") else f"champion {summary['champion']}"
    if summary["candidate"] == summary["champion"]:
        reasons.append(f"{summary['candidate']} is already the champion")
    overall = summary["overall"].get(primary)
    if overall is None:
        reasons.append(f"primary metric {primary!r} was not computed (add it to evaluation.metrics)")
    else:
        d = overall["diff"]
        if not (d > 0 and d >= config.min_improvement):
            reasons.append(
                f"{primary} {overall['candidate']:.4f} vs {versus} {overall['champion']:.4f}: difference {d:+.4f} "
                f"is not an improvement of at least {config.min_improvement:g} (must also be > 0)"
            )
        for s, v in summary["slices"].items():
            sd = v["metrics"].get(primary, {}).get("diff", math.nan)
            if sd < -config.slice_tolerance:
                reasons.append(f"slice '{s}' ({v['n']} items): {primary} dropped by {-sd:.4f} "
                               f"(more than slice_tolerance {config.slice_tolerance:g})")
    if leak_problem:
        reasons.append(f"refused: {leak_problem}")
    if leaks:
        shown = ", ".join(f"{x['example_id']} ({x['input'][:40]!r})" for x in list(leaks)[:5])
        reasons.append(f"refused: {len(leaks)} eval item(s) appear in the candidate's training data "
                       f"(dataset {summary.get('dataset_version')}): {shown}")
    if reasons:
        return GateDecision(False, reasons)
    ci = f"95% CI [{overall['ci_low']:+.4f}, {overall['ci_high']:+.4f}]"
    return GateDecision(True, [f"{primary} {overall['candidate']:.4f} vs {versus} {overall['champion']:.4f} "
                               f"({overall['diff']:+.4f}, {ci}); no slice dropped more than {config.slice_tolerance:g}"])


# --- the whole evaluation --------------------------------------------------------------------
@dataclass
class EvaluationOutcome:
    summary: dict[str, Any]
    answers: pa.Table
    decision: GateDecision
    report_dir: Path
    champion_cached: bool


def answers_table(items: Sequence[EvalItem], candidate: Sequence[str], champion: Sequence[str],
                  cand_scores: dict[str, list[float]], champ_scores: dict[str, list[float]]) -> pa.Table:
    """One row per eval item: ids, slice, reference, both answers and every metric for both."""
    cols: dict[str, Any] = {
        "example_id": [it.example_id for it in items],
        "slice": [it.slice for it in items],
        "input": [it.question for it in items],
        "reference": [it.reference for it in items],
        "candidate_answer": list(candidate),
        "champion_answer": list(champion),
    }
    for m in cand_scores:
        cols[f"candidate_{m}"] = pa.array(cand_scores[m], type=pa.float64())
        cols[f"champion_{m}"] = pa.array(champ_scores[m], type=pa.float64())
    return pa.table(cols)


def _cell(text: str, limit: int = 60) -> str:
    text = (text or "").replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def worst_regressions_markdown(answers: pa.Table, metric: str, limit: int = 10) -> str:
    """A markdown table of the items where the candidate lost most to the champion on `metric`."""
    rows = answers.to_pylist()
    scored = [(r[f"candidate_{metric}"] - r[f"champion_{metric}"], r) for r in rows
              if not (math.isnan(r[f"candidate_{metric}"]) or math.isnan(r[f"champion_{metric}"]))]
    worst = [x for x in sorted(scored, key=lambda x: x[0]) if x[0] < 0][:limit]
    if not worst:
        return f"No item where the candidate scores below the champion on {metric}."
    lines = [f"| slice | input | reference | candidate | champion | Δ {metric} |", "|---|---|---|---|---|---|"]
    for d, r in worst:
        lines.append(f"| {r['slice']} | {_cell(r['input'], 40)} | {_cell(r['reference'])} | "
                     f"{_cell(r['candidate_answer'])} | {_cell(r['champion_answer'])} | {d:+.3f} |")
    return "\n".join(lines)


def summary_markdown(summary: dict[str, Any]) -> str:
    """Overall and per-slice scores of candidate vs champion as a markdown table."""
    metrics = list(summary["overall"])
    head = "| scope | n | " + " | ".join(f"{m} cand / champ (Δ, 95% CI)" for m in metrics) + " |"
    lines = [head, "|---|---|" + "---|" * len(metrics)]

    def cells(block: dict[str, Any]) -> str:
        return " | ".join(
            f"{block[m]['candidate']:.3f} / {block[m]['champion']:.3f} ({block[m]['diff']:+.3f}, "
            f"[{block[m]['ci_low']:+.3f}, {block[m]['ci_high']:+.3f}])" for m in metrics)

    lines.append(f"| **overall** | {summary['n_items']} | {cells(summary['overall'])} |")
    for s, v in summary["slices"].items():
        lines.append(f"| {s} | {v['n']} | {cells(v['metrics'])} |")
    return "\n".join(lines)


def make_judge(project: ProjectConfig) -> LLMJudge | None:
    """The configured LLM judge (API key from the env var named in evaluation.judge), or None."""
    import os

    from flywheel.project import rubric_text

    cfg = project.evaluation.judge
    if cfg is None:
        return None
    return LLMJudge(cfg.base_url, cfg.model, rubric_text(project), api_key=os.environ.get(cfg.api_key_env))


def evaluate_candidate(
    project: ProjectConfig,
    home: FlywheelHome,
    candidate: ModelVersionRef,
    eval_table: pa.Table,
    eval_info: dict[str, Any],
    champion: ModelVersionRef | None,
) -> EvaluationOutcome:
    """Generate and score the candidate's and the champion's (or base model's) answers on the fixed
    set, summarise per slice with bootstrap CIs, check for eval leaks, apply the gate, and write
    `reports/evaluations/<candidate>/answers.parquet` and `summary.json`."""
    cfg = project.evaluation
    items = eval_items(eval_table)
    prompts = [it.prompt for it in items]
    model, tokenizer = load_adapter_model(candidate, home)
    cand_answers = generate_answers(model, tokenizer, prompts, cfg.max_new_tokens, cfg.batch_size)
    del model

    if champion is None:
        base = candidate.base_model
        champion_label = f"base:{base}"
        champ_answers, cached = champion_answers(home, champion_label, eval_info["content_hash"], items,
                                                 cfg.max_new_tokens, lambda: load_base_for_generation(base, home),
                                                 cfg.batch_size)
    else:
        champion_label = champion.version
        champ_answers, cached = champion_answers(home, champion_label, eval_info["content_hash"], items,
                                                 cfg.max_new_tokens, lambda: load_adapter_model(champion, home),
                                                 cfg.batch_size)

    rule = FormatRule(project.curation.answer_regex, project.curation.answer_json_schema)
    judge = make_judge(project) if "judge" in cfg.metrics else None
    try:
        cand_scores = score_answers(items, cand_answers, cfg.metrics, rule, judge)
        champ_scores = score_answers(items, champ_answers, cfg.metrics, rule, judge)
    finally:
        if judge is not None:
            judge.close()

    summary = {
        "candidate": candidate.version,
        "champion": champion_label,
        "champion_is_base": champion is None,
        "base_model": candidate.base_model,
        "dataset_version": candidate.dataset_version,
        "eval_set_hash": eval_info["content_hash"],
        "eval_set_version": eval_info["eval_set_version"],
        "primary_metric": cfg.primary_metric,
        "metrics": list(cfg.metrics),
        "n_items": len(items),
        "max_new_tokens": cfg.max_new_tokens,
        "bootstrap_samples": cfg.bootstrap_samples,
        "bootstrap_seed": BOOTSTRAP_SEED,
        "champion_answers_cached": cached,
        "created_at": datetime.now(UTC).isoformat(),
        **summarize(items, cand_scores, champ_scores, cfg.bootstrap_samples),
    }
    leaks, problem = training_data_leaks(home, candidate.dataset_version, eval_table)
    summary["leaks"] = leaks
    summary["leak_problem"] = problem
    decision = gate(summary, cfg, leaks, problem)
    summary["gate"] = {"passed": decision.passed, "reasons": decision.reasons}

    table = answers_table(items, cand_answers, champ_answers, cand_scores, champ_scores)
    report_dir = home.reports() / "evaluations" / candidate.version
    write_parquet(table, report_dir / "answers.parquet")
    write_json(summary, report_dir / "summary.json")
    return EvaluationOutcome(summary, table, decision, report_dir, cached)


def read_summary(home: FlywheelHome, version: str) -> dict[str, Any]:
    """The `summary.json` of a candidate's evaluation."""
    path = home.reports() / "evaluations" / version / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: candidate {version!r} has not been evaluated")
    return json.loads(path.read_text(encoding="utf-8"))


def eval_set_table(home: FlywheelHome) -> pa.Table:
    """The materialized fixed eval set (`warehouse/fixed_eval_set/current.parquet`)."""
    path = home.warehouse("fixed_eval_set", "current")
    if not path.exists():
        raise EvalSetError(f"{path}: fixed eval set not materialized yet")
    return pq.read_table(path).select(EXAMPLE_SCHEMA.names).cast(EXAMPLE_SCHEMA)


__all__ = [
    "AdapterLoadError", "EvalItem", "EvalSetError", "EvalSetLoad", "EvaluationOutcome", "GateDecision",
    "ModelVersionRef", "answers_table", "candidate_pointer", "champion_answers", "check_adapter_files",
    "eval_items", "eval_set_hash", "eval_set_info", "eval_set_table", "evaluate_candidate", "find_eval_leaks",
    "gate", "generate_answers", "inference_device", "load_adapter_model", "load_base_for_generation", "load_eval_set",
    "model_version", "read_summary",
    "score_answers", "slice_counts", "summarize", "summary_markdown", "training_data_leaks",
    "worst_regressions_markdown",
]


# --- cycle entry points (one per asset) ------------------------------------------------------
def build_fixed_eval_set(project: ProjectConfig, home: FlywheelHome, db_url: str) -> dict[str, Any]:
    """Read the eval file, write `warehouse/fixed_eval_set/current.parquet` + `current.json` (and the
    unusable rows to `quarantine/fixed_eval_set/current.parquet`), and freeze its hash in the registry
    the first time this eval-set version is seen complete (>= min_items, no invalid rows)."""
    from flywheel.models import registry

    cfg = project.evaluation
    loaded = load_eval_set(project.resolve(cfg.eval_set), project.curation.max_tokens)
    info = eval_set_info(loaded.table, cfg.eval_set_version)
    write_parquet(loaded.table, home.warehouse("fixed_eval_set", "current"))
    write_parquet(pa.Table.from_pylist(loaded.invalid, schema=QUARANTINE_SCHEMA), home.quarantine("fixed_eval_set", "current"))
    frozen = None
    if info["items"] >= cfg.min_items and not loaded.invalid:
        frozen = registry.freeze_eval_set(db_url, cfg.eval_set_version, info["content_hash"], info["items"], info["slices"])
    else:
        frozen = registry.frozen_eval_set(db_url, cfg.eval_set_version)
    info.update({
        "file": str(loaded.path),
        "format": loaded.format,
        "read": loaded.read,
        "invalid": len(loaded.invalid),
        "invalid_reasons": dict(Counter(r["reason"] for r in loaded.invalid)),
        "frozen_hash": frozen["content_hash"] if frozen else None,
    })
    write_json(info, home.warehouse("fixed_eval_set") / "current.json")
    return info


def read_eval_set_info(home: FlywheelHome) -> dict[str, Any]:
    """`warehouse/fixed_eval_set/current.json`."""
    path = home.warehouse("fixed_eval_set") / "current.json"
    if not path.exists():
        raise EvalSetError(f"{path}: fixed eval set not materialized yet")
    return json.loads(path.read_text(encoding="utf-8"))


def run_evaluation_cycle(project: ProjectConfig, home: FlywheelHome, db_url: str) -> EvaluationOutcome:
    """Evaluate the candidate of `models/candidate.json` against the registry's champion (the base
    model before the first promotion), record it in the registry (status candidate or rejected with
    the gate's reasons) and append the cycle to the score history (with its plot)."""
    from flywheel.models import registry

    info = read_eval_set_info(home)
    table = eval_set_table(home)
    if eval_set_hash(table) != info["content_hash"]:
        raise EvalSetError(f"{home.warehouse('fixed_eval_set', 'current')}: content does not match current.json; "
                           "re-materialize fixed_eval_set")
    candidate = candidate_pointer(home)
    champ = registry.current_champion(db_url)
    champion = model_version(home, champ.version, champ.adapter_path) if champ else None
    outcome = evaluate_candidate(project, home, candidate, table, info, champion)
    s = outcome.summary
    scores = {
        "overall": {m: v["candidate"] for m, v in s["overall"].items()},
        "slices": {sl: {m: v["candidate"] for m, v in b["metrics"].items()} for sl, b in s["slices"].items()},
    }
    registry.record_candidate(
        db_url, candidate.version, dataset_version=candidate.dataset_version, base_model=candidate.base_model,
        adapter_path=str(candidate.path), eval_set_hash=s["eval_set_hash"], eval_set_version=s["eval_set_version"],
        scores=scores, gate_passed=outcome.decision.passed, gate_reasons=outcome.decision.reasons,
    )
    registry.record_evaluation(db_url, s, outcome.decision.passed)
    rows = registry.score_history(db_url, s["eval_set_version"])
    registry.plot_score_history(rows, outcome.report_dir / "score_history.png")
    registry.plot_score_history(rows, home.reports() / "score_history.png")
    return outcome
