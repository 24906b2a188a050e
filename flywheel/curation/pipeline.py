"""Curation: from example sources to a versioned, checked training dataset.

Sources (`load_source_examples`) turn the user's seed / synthetic / distilled files into
EXAMPLE_SCHEMA rows; bad rows are quarantined with file, row and reason (read = accepted + quarantined).

`curate` merges every source and runs small steps, each reporting its counts (datatrove style):

1. `FormatStep`      one canonical ChatML form (formats.validate_messages); the system prompt must
                     be `curation.system_prompt` when configured: a different one is dropped
                     (`system_prompt_mismatch`), a missing one is prepended (inference always sends it).
2. `RubricStep`      automated proxies for the rubric's five questions; two or more failed rules
                     drop the example, exactly one flags it for review (kept, `flagged.parquet`).
3. `DedupStep`       exact duplicates (normalized whole conversation) and near-duplicate inputs
                     (MinHash/LSH, `flywheel.curation.near_duplicates`) whose answers agree: the most trusted
                     copy is kept (human-fixed > real > human > distilled > synthetic, then weight).
4. `ConflictStep`    near-same inputs whose answers disagree (rapidfuzz ratio below
                     `conflict_answer_similarity`): the most trusted is kept, the rest are listed in
                     `conflicts.parquet` and sent to review as batch `conflicts-<version>`.
5. `DecontaminationStep` no shared word n-gram (`decontamination_ngram`) and no near-duplicate input
                     with any item of the fixed eval set.
6. `BalanceStep`     real:synthetic no worse than 1:`max_synthetic_per_real` (seeded down-sampling),
                     self-generated examples capped at `max_self_generated_share`, a warning when one
                     generator wrote more than `max_generator_share` of the synthetic rows.
7. `SizeStep`        the floor, the target and the ceiling (reported; the checks act on them).

Every dropped example is recorded with its step, reason, detail and the example kept instead.
`write_dataset_version` writes `datasets/<version>/` where the version is the content hash of the
sorted training rows: the same inputs give the same version.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rapidfuzz import fuzz

from flywheel import formats
from flywheel.config import CurationConfig
from flywheel.core.records import EXAMPLE_SCHEMA, example_id, make_example
from flywheel.core.storage import (
    FlywheelHome,
    read_parquet,
    write_json,
    write_jsonl,
    write_parquet,
    write_text,
)
from flywheel.curation.diversity import diversity_changes, diversity_report, seeded_sample
from flywheel.curation.near_duplicates import (
    MinHasher,
    candidate_links,
    clusters_from_pairs,
    estimated_jaccard,
    lsh_params,
)
from flywheel.curation.production_gap import (
    INPUT_LENGTHS_PNG,
    build_vocabulary,
    input_length_histogram,
    production_gap,
)

SOURCE_PRIORITY: dict[str, int] = {"human_fixed": 0, "real": 1, "human": 2, "distilled": 3, "synthetic": 4}
REAL_SOURCES = frozenset({"real", "human"})
QUARANTINE_SCHEMA = pa.schema([("source_file", pa.string()), ("line", pa.int64()), ("reason", pa.string()),
                               ("detail", pa.string()), ("raw", pa.string())])
DROPS_SCHEMA = pa.schema([("example_id", pa.string()), ("source", pa.string()), ("step", pa.string()),
                          ("reason", pa.string()), ("detail", pa.string()), ("kept_instead", pa.string())])
FLAGGED_SCHEMA = pa.schema([("example_id", pa.string()), ("source", pa.string()), ("rule", pa.string()),
                            ("detail", pa.string())])
CONFLICTS_SCHEMA = pa.schema([("example_id", pa.string()), ("source", pa.string()), ("generator", pa.string()),
                              ("input", pa.string()), ("answer", pa.string()), ("kept_example_id", pa.string()),
                              ("kept_source", pa.string()), ("kept_answer", pa.string()), ("similarity", pa.float64())])
REFUSAL_PATTERNS = (
    r"\bi(?:'m| am) sorry,? but i (?:can(?:no|')t|am unable|won't)", r"\bi can(?:no|')t (?:help|assist|provide|do that)",
    r"\bi(?:'m| am) (?:not able|unable) to (?:help|assist|provide|answer)", r"\bas an ai(?: language model)?,? i (?:can(?:no|')t|don't|do not|am not able)",
    r"\bi(?: must|'ll have to)? (?:decline|refuse)\b", r"\bi won't be able to (?:help|assist)",
    r"\bi(?:'m| am) not (?:allowed|permitted) to\b",
)
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_LIST_MARKER = re.compile(r"(?m)^\s*(?:\w{1,3}|[ivx]+)\)")
_MARKDOWN = re.compile(r"(?m)^\s*(?:#{1,6}\s|[-*+]\s|\d+\.\s|```)|\*\*")
_TERMINAL = tuple(".!?)]}\"'`:;*…»>")


class CurationError(ValueError):
    """Curation cannot run on these inputs (named cause)."""


# --- sources ---------------------------------------------------------------------------------
@dataclass
class SourceLoad:
    """The examples accepted from a source's files and the rows quarantined (read = accepted + quarantined)."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def read(self) -> int:
        return sum(f["read"] for f in self.files)

    def quarantine_reasons(self) -> dict[str, int]:
        return dict(Counter(q["reason"] for q in self.quarantine).most_common())


def _raw_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)


def _row_value(row: formats.RowResult, keys: Sequence[str]) -> Any:
    """The first non-empty of `keys` among the row's keys outside its format."""
    sources = [row.extras or {}, row.raw if isinstance(row.raw, dict) else {}]
    for key in keys:
        for src in sources:
            v = src.get(key)
            if v not in (None, ""):
                return v
    return None


def load_source_examples(paths: Sequence[str | Path], source: str, max_tokens: int = 4096,
                         generator_keys: Sequence[str] = ()) -> SourceLoad:
    """Read example files (ChatML, ShareGPT or Alpaca) as EXAMPLE_SCHEMA rows of `source`.

    With `generator_keys` every row must name the model that wrote it (first non-empty key): a file
    where no row does is refused (every row quarantined as `file_without_generator`), single rows
    without one are quarantined as `missing_generator`. An unreadable or mixed-format file counts as
    one read record and is quarantined with line 0. Optional per-row keys: `slice`, `weight`, `id`.
    """
    out = SourceLoad()
    for p in paths:
        path = Path(p)
        try:
            report = formats.load_file(path, max_tokens=max_tokens)
        except (formats.FormatFileError, OSError) as exc:
            reason = "mixed_formats" if isinstance(exc, formats.MixedFormatError) else "unreadable_file"
            out.quarantine.append({"source_file": str(path), "line": 0, "reason": reason, "detail": str(exc), "raw": ""})
            out.files.append({"file": str(path), "format": None, "read": 1, "accepted": 0, "quarantined": 1})
            continue
        generators = [(_row_value(r, generator_keys) if generator_keys else None) for r in report.rows]
        file_has_generator = any(g is not None for g in generators) or not generator_keys
        accepted = 0
        for row, gen in zip(report.rows, generators, strict=True):
            line = row.line if row.line is not None else row.index + 1
            reason, detail = None, ""
            if not row.ok:
                reason = row.errors[0]
                detail = "; ".join(f"{e}: {row.details.get(e, '')}" for e in row.errors)
            elif not file_has_generator:
                reason, detail = "file_without_generator", f"no row names the model that wrote it (keys: {', '.join(generator_keys)})"
            elif generator_keys and gen is None:
                reason, detail = "missing_generator", f"row names no model (keys: {', '.join(generator_keys)})"
            if reason:
                out.quarantine.append({"source_file": str(path), "line": line, "reason": reason,
                                       "detail": f"{path}: {row.where}: {detail}", "raw": _raw_text(row.raw)})
                continue
            weight = _row_value(row, ("weight",))
            slice_tag = _row_value(row, ("slice",))
            lineage = {"file": str(path), "row": line, "format": report.format}
            if (rid := _row_value(row, ("id",))) is not None:
                lineage["id"] = rid
            out.examples.append(make_example(
                row.messages or [], source, generator=None if gen is None else str(gen), lineage=lineage,
                slice=str(slice_tag) if slice_tag is not None else None,
                weight=float(weight) if isinstance(weight, (int, float)) else 1.0,
            ))
            accepted += 1
        out.files.append({"file": str(path), "format": report.format, "read": len(report.rows), "accepted": accepted,
                          "quarantined": len(report.rows) - accepted})
    return out


def quarantine_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=QUARANTINE_SCHEMA)


# --- the working set -------------------------------------------------------------------------
def input_text(messages: Sequence[dict[str, str]]) -> str:
    """Everything the model sees before the final answer, except the system prompt."""
    return "\n".join(m["content"] for m in messages[:-1] if m["role"] != "system")


def last_user_text(messages: Sequence[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def normalize_text(text: str) -> str:
    """Lower-case, whitespace runs collapsed to one space, stripped."""
    return " ".join(text.lower().split())


def trust_rank(row: dict[str, Any]) -> int:
    """Lower is more trusted: human_fixed > real > human > distilled > synthetic."""
    return 0 if row.get("human_fixed") else SOURCE_PRIORITY.get(row.get("source") or "", 9)


def keep_order(row: dict[str, Any]) -> tuple[int, float, str]:
    """Sort key of which copy to keep: most trusted source, then the highest signal weight, then id."""
    return (trust_rank(row), -(row.get("weight") or 0.0), row["example_id"])


@dataclass
class StepReport:
    """Counts of one step: rows in, rows out, dropped per reason, flagged per rule, seconds."""

    step: str
    n_in: int
    n_out: int
    dropped: dict[str, int]
    flagged: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalItems:
    """The fixed eval set's conversations (None when the eval set file does not exist)."""

    rows: list[dict[str, Any]] | None
    path: str = ""


@dataclass
class CurationContext:
    """What the steps share: the config, the eval set, production facts, and the records they append."""

    config: CurationConfig
    eval_items: EvalItems = field(default_factory=lambda: EvalItems(None))
    production_model_versions: set[str] = field(default_factory=set)
    drops: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def drop(self, row: dict[str, Any], step: str, reason: str, detail: str = "", kept_instead: str | None = None) -> None:
        self.drops.append({"example_id": row["example_id"], "source": row.get("source"), "step": step,
                           "reason": reason, "detail": detail, "kept_instead": kept_instead})

    def hasher(self) -> MinHasher:
        c = self.config
        return MinHasher(num_perm=c.minhash_permutations, seed=c.seed + 1, shingle=c.shingle_chars)

    def input_signatures(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """MinHash signatures of the rows' inputs, computed once per example id across steps."""
        index: dict[str, int] = self.facts.setdefault("_signature_index", {})
        store: list[np.ndarray] = self.facts.setdefault("_signature_store", [])
        todo: dict[str, str] = {}
        for r in rows:
            if r["example_id"] not in index and r["example_id"] not in todo:
                todo[r["example_id"]] = normalize_text(input_text(r["messages"]))
        if todo:
            start = sum(len(b) for b in store)
            store.append(self.hasher().signatures(list(todo.values())))
            index.update((eid, start + j) for j, eid in enumerate(todo))
        matrix = store[0] if len(store) == 1 else np.concatenate(store)
        if len(store) > 1:
            store[:] = [matrix]
        return matrix[np.fromiter((index[r["example_id"]] for r in rows), dtype=np.int64, count=len(rows))]


class Step:
    """One curation step: rows in, rows out; drops/flags go to the context."""

    name = "step"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        raise NotImplementedError


# --- 1. format ---------------------------------------------------------------------------------
class FormatStep(Step):
    """Canonical ChatML, validated; the configured system prompt enforced (mismatch dropped, missing prepended)."""

    name = "format"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        prompt = ctx.config.system_prompt
        kept = []
        prepended = 0
        for row in rows:
            msgs = [{"role": m["role"], "content": (m["content"] or "").replace("\r\n", "\n").strip()}
                    for m in (row.get("messages") or [])]
            if prompt is not None:
                if msgs and msgs[0]["role"] == "system":
                    if normalize_text(msgs[0]["content"]) != normalize_text(prompt):
                        ctx.drop(row, self.name, "system_prompt_mismatch", msgs[0]["content"][:200])
                        continue
                else:
                    msgs = [{"role": "system", "content": prompt.strip()}, *msgs]
                    prepended += 1
            check = formats.validate_messages(msgs, max_tokens=ctx.config.max_tokens)
            if not check.ok:
                reason = check.errors[0]
                ctx.drop(row, self.name, reason, "; ".join(f"{e}: {check.details.get(e, '')}" for e in check.errors))
                continue
            if msgs != row["messages"]:
                new_id = example_id(msgs)
                if new_id != row["example_id"]:
                    lineage = json.loads(row.get("lineage") or "{}")
                    lineage["original_example_id"] = row["example_id"]
                    row = {**row, "lineage": json.dumps(lineage, sort_keys=True, ensure_ascii=False), "example_id": new_id}
                row = {**row, "messages": msgs}
            kept.append(row)
        ctx.facts["system_prompt_prepended"] = prepended
        return kept


# --- 2. rubric rules -----------------------------------------------------------------------------
def _answer(row: dict[str, Any]) -> str:
    msgs = row["messages"]
    return msgs[-1]["content"] if msgs and msgs[-1]["role"] == "assistant" else ""


def rule_empty_or_degenerate(answer: str) -> str | None:
    """Q1 (proud to show it?): an empty answer, or one that is mostly the same words repeated."""
    if not answer.strip():
        return "empty answer"
    words = _WORD.findall(answer.lower())
    if len(words) >= 20 and len(set(words)) / len(words) < 0.15:
        return f"{len(set(words))} distinct words in {len(words)}"
    return None


def rule_truncated(answer: str) -> str | None:
    """Q1/Q3: ends mid-sentence, or unbalanced brackets / code fences."""
    text = answer.strip()
    if text.count("```") % 2:
        return "unclosed code fence"
    body = _LIST_MARKER.sub("", text)
    for o, c in ("()", "[]", "{}"):
        if body.count(o) != body.count(c):
            return f"unbalanced {o}{c}: {body.count(o)} vs {body.count(c)}"
    last_line = text.rsplit("\n", 1)[-1].strip()
    if len(text) >= 40 and not text.endswith(_TERMINAL) and len(last_line.split()) >= 6 and (text[-1].isalnum() or text[-1] in ",-("):
        return f"ends mid-sentence: …{text[-40:]!r}"
    return None


def rule_length(answer: str, cfg: CurationConfig) -> str | None:
    """Q2: answer length within [answer_min_chars, answer_max_chars]."""
    n = len(answer)
    if n < cfg.answer_min_chars or n > cfg.answer_max_chars:
        return f"{n} chars, expected {cfg.answer_min_chars}-{cfg.answer_max_chars}"
    return None


def rule_refusal(answer: str, cfg: CurationConfig) -> str | None:
    """Q5: refuses where the task should answer (unless `refusal_is_allowed`)."""
    if cfg.refusal_is_allowed:
        return None
    m = _REFUSAL.search(answer[:500])
    return f"refusal phrase {m.group(0)!r}" if m else None


class FormatRules:
    """Q2: the answer shape from the project file (answer_regex, answer_json_schema)."""

    def __init__(self, cfg: CurationConfig) -> None:
        self.regex = re.compile(cfg.answer_regex, re.DOTALL) if cfg.answer_regex else None
        self.validator = None
        if cfg.answer_json_schema:
            import jsonschema

            cls = jsonschema.validators.validator_for(cfg.answer_json_schema)
            cls.check_schema(cfg.answer_json_schema)
            self.validator = cls(cfg.answer_json_schema)

    def regex_problem(self, answer: str) -> str | None:
        if self.regex and not self.regex.search(answer):
            return f"does not match answer_regex {self.regex.pattern!r}"
        return None

    def schema_problem(self, answer: str) -> str | None:
        if self.validator is None:
            return None
        try:
            value = json.loads(answer)
        except ValueError as exc:
            return f"not JSON: {exc}"
        err = next(iter(self.validator.iter_errors(value)), None)
        return None if err is None else f"schema: {err.message[:200]}"


def style_outliers(rows: Sequence[dict[str, Any]], answers: Sequence[str], fence: float) -> dict[int, str]:
    """Q5 (consistent with the rest?): answers whose log length lies beyond `fence` IQRs outside the
    quartiles of their source and slice (Tukey fences), or that use markdown where under 5% of the group does."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.get("source") or "", r.get("slice") or ""), []).append(i)
    out: dict[int, str] = {}
    for (src, sl), idx in groups.items():
        if len(idx) < 20:
            continue
        lengths = np.log1p(np.array([len(answers[i]) for i in idx], dtype=float))
        q1, q3 = np.percentile(lengths, [25, 75])
        lo, hi = q1 - fence * (q3 - q1), q3 + fence * (q3 - q1)
        md = np.array([bool(_MARKDOWN.search(answers[i])) for i in idx])
        md_rare = md.mean() < 0.05
        for j, i in enumerate(idx):
            if q3 > q1 and not lo <= lengths[j] <= hi:
                out[i] = (f"answer length {len(answers[i])} is an outlier in {src}/{sl or '-'} "
                          f"(quartiles {math.expm1(q1):.0f}-{math.expm1(q3):.0f} chars)")
            elif md_rare and md[j]:
                out[i] = f"markdown answer where {md.mean():.0%} of {src}/{sl or '-'} use markdown"
    return out


class RubricStep(Step):
    """Automated rubric proxies; 2+ failed rules drop, exactly 1 flags for review."""

    name = "rubric"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        fmt = FormatRules(cfg)
        answers = [_answer(r) for r in rows]
        outliers = style_outliers(rows, answers, cfg.style_outlier_iqr)
        kept = []
        for i, (row, answer) in enumerate(zip(rows, answers, strict=True)):
            failed = {
                "empty_or_degenerate": rule_empty_or_degenerate(answer),
                "truncated": rule_truncated(answer),
                "length_out_of_range": rule_length(answer, cfg),
                "refusal": rule_refusal(answer, cfg),
                "answer_regex": fmt.regex_problem(answer),
                "answer_json_schema": fmt.schema_problem(answer),
                "style_outlier": outliers.get(i),
            }
            failed = {k: v for k, v in failed.items() if v}
            if len(failed) >= 2:
                ctx.drop(row, self.name, "+".join(sorted(failed)), "; ".join(f"{k}: {v}" for k, v in sorted(failed.items())))
                continue
            if failed:
                (rule, detail), = failed.items()
                ctx.flagged.append({"example_id": row["example_id"], "source": row.get("source"), "rule": rule, "detail": detail})
            kept.append(row)
        return kept


# --- 3. duplicates -------------------------------------------------------------------------------
def exact_key(messages: Sequence[dict[str, str]]) -> str:
    """Hash of the normalized whole conversation (roles and lower-cased, whitespace-collapsed text)."""
    canon = "\x1e".join(f"{m['role']}\x1f{normalize_text(m['content'])}" for m in messages)
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=12).hexdigest()


def near_input_groups(rows: Sequence[dict[str, Any]], ctx: CurationContext) -> list[tuple[int, list[tuple[int, float]]]]:
    """Rows with near-same inputs (MinHash/LSH candidates, estimated Jaccard >= threshold).

    Within each LSH cluster, rows are visited from the most trusted down; a row joins the first
    representative whose input it is near (checked directly, so A~B~C chains do not join A and C),
    otherwise it becomes a representative. Returns (representative, [(member, input similarity)]).
    """
    if len(rows) < 2:
        return []
    threshold = ctx.config.near_duplicate_threshold
    sig = ctx.input_signatures(rows)
    pairs = candidate_links(sig, threshold)
    if len(pairs):
        pairs = pairs[estimated_jaccard(sig, pairs) >= threshold]
    labels = clusters_from_pairs(len(rows), pairs)
    out = []
    for group in _groups(labels.tolist()):
        group.sort(key=lambda i: keep_order(rows[i]))
        reps: list[int] = []
        members: dict[int, list[tuple[int, float]]] = {}
        for i in group:
            if reps:
                sims = (sig[reps] == sig[i]).mean(axis=1)
                best = int(np.argmax(sims >= threshold)) if (sims >= threshold).any() else -1
                if best >= 0:
                    members[reps[best]].append((i, float(sims[best])))
                    continue
            reps.append(i)
            members[i] = []
        out.extend((r, m) for r, m in members.items() if m)
    return out


def answer_similarity(a: str, b: str) -> float:
    """rapidfuzz ratio (0-1) of the normalized answers."""
    return fuzz.ratio(normalize_text(a), normalize_text(b)) / 100.0


def _groups(labels: Sequence[Any]) -> list[list[int]]:
    by: dict[Any, list[int]] = {}
    for i, lab in enumerate(labels):
        by.setdefault(lab, []).append(i)
    return [g for g in by.values() if len(g) > 1]


class DedupStep(Step):
    """Exact duplicates, then near-duplicate inputs whose answers agree; the most trusted copy stays."""

    name = "dedup"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        drop = np.zeros(len(rows), dtype=bool)
        for group in _groups([exact_key(r["messages"]) for r in rows]):
            keeper = min(group, key=lambda i: keep_order(rows[i]))
            for i in group:
                if i != keeper:
                    drop[i] = True
                    ctx.drop(rows[i], self.name, "exact_duplicate", "same normalized conversation", rows[keeper]["example_id"])
        rows = [r for r, d in zip(rows, drop, strict=True) if not d]
        drop = np.zeros(len(rows), dtype=bool)
        limit = ctx.config.conflict_answer_similarity
        groups = near_input_groups(rows, ctx)
        for keeper, members in groups:
            kept_answer = _answer(rows[keeper])
            for i, input_sim in members:
                sim = answer_similarity(_answer(rows[i]), kept_answer)
                if sim >= limit:
                    drop[i] = True
                    ctx.drop(rows[i], self.name, "near_duplicate", f"input ~{input_sim:.2f} Jaccard, answer similarity {sim:.2f}",
                             rows[keeper]["example_id"])
        ctx.facts["near_duplicate_groups"] = len(groups)
        return [r for r, d in zip(rows, drop, strict=True) if not d]


# --- 4. conflicts --------------------------------------------------------------------------------
class ConflictStep(Step):
    """Near-same inputs with contradicting answers: keep the most trusted, list the rest for review."""

    name = "conflicts"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        drop = np.zeros(len(rows), dtype=bool)
        for keeper, members in near_input_groups(rows, ctx):
            k = rows[keeper]
            for i, input_sim in members:
                r = rows[i]
                sim = answer_similarity(_answer(r), _answer(k))
                drop[i] = True
                ctx.drop(r, self.name, "conflicting_answer",
                         f"input ~{input_sim:.2f} Jaccard, answer similarity {sim:.2f} to the kept one", k["example_id"])
                ctx.conflicts.append({
                    "example_id": r["example_id"], "source": r.get("source"), "generator": r.get("generator"),
                    "input": input_text(r["messages"]), "answer": _answer(r), "kept_example_id": k["example_id"],
                    "kept_source": k.get("source"), "kept_answer": _answer(k), "similarity": round(sim, 4),
                    "messages": r["messages"],  # for the review batch; not a column of conflicts.parquet
                })
        return [r for r, d in zip(rows, drop, strict=True) if not d]


# --- 5. decontamination ----------------------------------------------------------------------------
def _conversation_words(messages: Sequence[dict[str, str]], roles: tuple[str, ...] = ("user", "assistant", "tool")) -> list[str]:
    return _WORD.findall(" ".join(m["content"] for m in messages if m["role"] in roles).lower())


def _ngram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """Rolling 64-bit keys of every n-gram of `ids`; n-grams touching a 0 (unknown word / separator) get key 0."""
    if len(ids) < n:
        return np.zeros(0, dtype=np.uint64)
    m = len(ids) - n + 1
    u = ids.astype(np.uint64)
    key = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        key = key * np.uint64(1_000_003) + u[j : j + m]
    zeros = np.concatenate([[0], np.cumsum(ids == 0)])
    has_zero = (zeros[n:] - zeros[:-n]) > 0
    key[has_zero] = 0
    return key


def contamination(rows: Sequence[dict[str, Any]], eval_rows: Sequence[dict[str, Any]], cfg: CurationConfig,
                  hasher: MinHasher, signatures: np.ndarray | None = None) -> dict[int, tuple[str, str]]:
    """Rows sharing a word n-gram (`decontamination_ngram`, normalized) or a near-duplicate input
    (estimated Jaccard >= near_duplicate_threshold) with any eval item: {row index: (reason, detail)}.

    The n-grams are those of the eval items' inputs (user turns), looked for anywhere in a training
    conversation: an eval question quoted in a training answer still leaks it, while a canned answer
    that the task legitimately gives to many different questions does not."""
    n = cfg.decontamination_ngram
    found: dict[int, tuple[str, str]] = {}
    if not rows or not eval_rows:
        return found
    vocab: dict[str, int] = {}
    eval_keys: dict[int, str] = {}
    for e in eval_rows:
        ids = np.array([vocab.setdefault(w, len(vocab) + 1) for w in _conversation_words(e["messages"], ("user",))], dtype=np.int64)
        for k in _ngram_keys(ids, n).tolist():
            eval_keys.setdefault(k, e.get("example_id") or "")
    if eval_keys:
        eval_set = np.fromiter(eval_keys, dtype=np.uint64)
        # all rows at once: word ids (0 = a word the eval set never uses), rows separated by a 0
        flat: list[int] = []
        starts = []
        for r in rows:
            starts.append(len(flat))
            flat.extend(vocab.get(w, 0) for w in _conversation_words(r["messages"]))
            flat.append(0)
        keys = _ngram_keys(np.array(flat, dtype=np.int64), n)
        hits = np.flatnonzero(np.isin(keys, eval_set) & (keys != 0))
        owners = np.searchsorted(np.array(starts, dtype=np.int64), hits, side="right") - 1
        for pos, i in zip(hits.tolist(), owners.tolist(), strict=True):
            if i not in found:
                found[i] = ("eval_ngram_overlap", f"shares a {n}-gram with eval item {eval_keys[int(keys[pos])]}")
    # near-duplicate inputs: band keys of the eval inputs looked up for every row, then verified
    sig = signatures if signatures is not None else hasher.signatures([normalize_text(input_text(r["messages"])) for r in rows])
    esig = hasher.signatures([normalize_text(input_text(e["messages"])) for e in eval_rows])
    bands, width = lsh_params(cfg.near_duplicate_threshold, sig.shape[1])
    from flywheel.curation.near_duplicates import _band_keys

    rk, ek = _band_keys(sig, bands, width), _band_keys(esig, bands, width)
    candidates: set[tuple[int, int]] = set()
    for b in range(bands):
        lookup: dict[int, list[int]] = {}
        for j, k in enumerate(ek[:, b].tolist()):
            lookup.setdefault(k, []).append(j)
        for i in np.flatnonzero(np.isin(rk[:, b], ek[:, b])).tolist():
            for j in lookup[int(rk[i, b])]:
                candidates.add((i, j))
    for i, j in sorted(candidates):
        sim = float((sig[i] == esig[j]).mean())
        if sim >= cfg.near_duplicate_threshold and i not in found:
            found[i] = ("eval_near_duplicate_input", f"input ~{sim:.2f} Jaccard to eval item {eval_rows[j].get('example_id')}")
    return found


class DecontaminationStep(Step):
    """No training example may share an n-gram or a near-duplicate input with the fixed eval set."""

    name = "decontamination"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        if ctx.eval_items.rows is None:
            ctx.facts["eval_set_missing"] = ctx.eval_items.path or "fixed eval set"
            ctx.warnings.append(f"fixed eval set not found ({ctx.eval_items.path}): decontamination could not run")
            return rows
        found = contamination(rows, ctx.eval_items.rows, ctx.config, ctx.hasher(), ctx.input_signatures(rows))
        for i, (reason, detail) in found.items():
            ctx.drop(rows[i], self.name, reason, detail)
        ctx.facts["eval_items"] = len(ctx.eval_items.rows)
        return [r for i, r in enumerate(rows) if i not in found]


# --- 6. balance -----------------------------------------------------------------------------------
def is_self_generated(row: dict[str, Any], self_names: set[str]) -> bool:
    return bool(row.get("generator")) and row["generator"] in self_names


class BalanceStep(Step):
    """Real:synthetic ratio and self-generated share (seeded down-sampling); generator-share warning."""

    name = "balance"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        rng = np.random.default_rng(cfg.seed)
        n_real = sum(1 for r in rows if r.get("source") in REAL_SOURCES)
        synthetic = [i for i, r in enumerate(rows) if r.get("source") == "synthetic"]
        allowed = math.floor(n_real * cfg.max_synthetic_per_real)
        drop: set[int] = set()
        if len(synthetic) > allowed:
            keep = set(rng.choice(synthetic, size=allowed, replace=False).tolist()) if allowed else set()
            for i in synthetic:
                if i not in keep:
                    drop.add(i)
                    ctx.drop(rows[i], self.name, "synthetic_over_ratio",
                             f"{len(synthetic)} synthetic for {n_real} real; at most {cfg.max_synthetic_per_real:g} per real")
        self_names = set(cfg.self_generator_names) | ctx.production_model_versions
        selfgen = [i for i, r in enumerate(rows) if i not in drop and is_self_generated(r, self_names)]
        others = len(rows) - len(drop) - len(selfgen)
        share = cfg.max_self_generated_share
        cap = math.floor(share * others / (1 - share)) if share < 1 else len(selfgen)
        if len(selfgen) > cap:
            keep = set(rng.choice(selfgen, size=cap, replace=False).tolist()) if cap else set()
            for i in selfgen:
                if i not in keep:
                    drop.add(i)
                    ctx.drop(rows[i], self.name, "self_generated_over_share",
                             f"generator {rows[i]['generator']} is the current model; at most {share:.0%} self-generated")
        kept = [r for i, r in enumerate(rows) if i not in drop]
        gens = Counter(r.get("generator") or "(none)" for r in kept if r.get("source") == "synthetic")
        n_syn = sum(gens.values())
        shares = {g: round(c / n_syn, 4) for g, c in gens.most_common()} if n_syn else {}
        ctx.facts["generator_shares"] = shares
        for g, s in shares.items():
            if s > cfg.max_generator_share:
                ctx.warnings.append(f"generator {g} wrote {s:.0%} of the synthetic rows (> {cfg.max_generator_share:.0%}): model-collapse risk")
        return kept


# --- 7. size ---------------------------------------------------------------------------------------
class SizeStep(Step):
    """The floor (fail), the target (warn) and the ceiling (more data brings little): reported."""

    name = "size"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        n = len(rows)
        ctx.facts["size"] = {"rows": n, "floor": cfg.min_examples, "target": cfg.target_examples, "ceiling": cfg.ceiling_examples}
        if n > cfg.ceiling_examples:
            ctx.warnings.append(f"{n} examples: above the ceiling {cfg.ceiling_examples}, where more data brings little")
        elif n < cfg.min_examples:
            ctx.warnings.append(f"{n} examples: below the floor {cfg.min_examples}")
        elif n < cfg.target_examples:
            ctx.warnings.append(f"{n} examples: below the target {cfg.target_examples}")
        return rows


DEFAULT_STEPS: tuple[Callable[[], Step], ...] = (FormatStep, RubricStep, DedupStep, ConflictStep, DecontaminationStep,
                                                  BalanceStep, SizeStep)


# --- pipeline ----------------------------------------------------------------------------------------
@dataclass
class CurationResult:
    """The training rows and everything the steps recorded."""

    rows: list[dict[str, Any]]
    reports: list[StepReport]
    ctx: CurationContext
    sources_in: dict[str, int]

    @property
    def drops(self) -> list[dict[str, Any]]:
        return self.ctx.drops


def run_steps(rows: list[dict[str, Any]], ctx: CurationContext, steps: Sequence[Step] | None = None) -> tuple[list[dict[str, Any]], list[StepReport]]:
    """Run `steps` in order; each reports in/out, drops per reason, flags per rule and its time."""
    reports = []
    for step in steps if steps is not None else [s() for s in DEFAULT_STEPS]:
        n_drops, n_flags = len(ctx.drops), len(ctx.flagged)
        t0 = time.perf_counter()
        n_in = len(rows)
        rows = step.run(rows, ctx)
        reports.append(StepReport(
            step=step.name, n_in=n_in, n_out=len(rows),
            dropped=dict(Counter(d["reason"] for d in ctx.drops[n_drops:]).most_common()),
            flagged=dict(Counter(f["rule"] for f in ctx.flagged[n_flags:]).most_common()),
            seconds=round(time.perf_counter() - t0, 3),
        ))
        assert n_in == len(rows) + sum(reports[-1].dropped.values()), f"step {step.name} lost rows"
    return rows, reports


def curate(examples: Sequence[dict[str, Any]], config: CurationConfig, eval_items: EvalItems | None = None,
           production_model_versions: set[str] | None = None, steps: Sequence[Step] | None = None) -> CurationResult:
    """Merge the example rows of every source and run the curation steps (sorted by id first, so the
    result does not depend on input order)."""
    ctx = CurationContext(config=config, eval_items=eval_items or EvalItems(None),
                          production_model_versions=set(production_model_versions or ()))
    rows = sorted((dict(r) for r in examples), key=lambda r: (r["example_id"], r.get("source") or "", r.get("lineage") or ""))
    sources_in = dict(Counter(("human_fixed" if r.get("human_fixed") else r.get("source")) for r in rows).most_common())
    rows, reports = run_steps(rows, ctx, steps)
    rows.sort(key=lambda r: r["example_id"])
    return CurationResult(rows=rows, reports=reports, ctx=ctx, sources_in=sources_in)


# --- dataset versions ----------------------------------------------------------------------------------
def content_hash(rows: Sequence[dict[str, Any]]) -> str:
    """sha256 of the training rows (sorted by example_id; every EXAMPLE_SCHEMA field, no timestamps)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: (r["example_id"], r.get("lineage") or "")):
        h.update(json.dumps([r.get(k) for k in EXAMPLE_SCHEMA.names], ensure_ascii=False, sort_keys=True,
                            separators=(",", ":")).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Rule:
    """A quality rule of a dataset version: blocking rules stop the run before training."""

    name: str
    blocking: bool
    passed: bool
    message: str


def evaluate_rules(result: CurationResult, rubric_problem: str | None, diversity_rows: Sequence[dict[str, Any]],
                   gap: dict[str, Any]) -> list[Rule]:
    """Every blocking and warning rule of the dataset, computed on the final rows."""
    cfg = result.ctx.config
    rows = result.rows
    facts = result.ctx.facts
    # full validation ran in the format step (later steps only remove rows); here: the step ran, and
    # every final row still ends with an answer and carries the configured system prompt
    format_ran = any(r.step == "format" for r in result.reports)
    prompt = normalize_text(cfg.system_prompt) if cfg.system_prompt is not None else None
    bad_format = [r["example_id"] for r in rows if not r["messages"] or r["messages"][-1]["role"] != "assistant"
                  or (prompt is not None and (r["messages"][0]["role"] != "system"
                      or normalize_text(r["messages"][0]["content"]) != prompt))]
    n = len(rows)
    n_real = sum(1 for r in rows if r.get("source") in REAL_SOURCES)
    n_syn = sum(1 for r in rows if r.get("source") == "synthetic")
    rules = [
        Rule("rubric_edited", True, rubric_problem is None, rubric_problem or "rubric present and edited"),
        Rule("format_consistent", True, format_ran and not bad_format,
             "the format step did not run" if not format_ran else
             f"{len(bad_format)} rows lack a final answer or the system prompt (e.g. {bad_format[:3]})" if bad_format
             else f"all {n} rows canonical ChatML" + (" with the configured system prompt" if cfg.system_prompt else "")),
        Rule("size_floor", True, n >= cfg.min_examples, f"{n} examples (floor {cfg.min_examples})"),
        Rule("real_synthetic_ratio", True, n_syn <= n_real * cfg.max_synthetic_per_real,
             f"{n_real} real/human : {n_syn} synthetic (at most 1:{cfg.max_synthetic_per_real:g})"),
    ]
    eval_rows = result.ctx.eval_items.rows
    decon = next((r for r in result.reports if r.step == "decontamination"), None)
    if eval_rows is None:
        rules.append(Rule("no_eval_contamination", True, False,
                          f"the fixed eval set is missing ({result.ctx.eval_items.path}): materialize `fixed_eval_set` "
                          "first; a dataset cannot be checked for contamination without it"))
    elif decon is None:
        rules.append(Rule("no_eval_contamination", True, False, "the decontamination step did not run"))
    else:  # later steps only remove rows, so the rows the step let through stay clean
        rules.append(Rule("no_eval_contamination", True, True,
                          f"no overlap with {len(eval_rows)} eval items ({sum(decon.dropped.values())} examples removed)"))
    shares = facts.get("generator_shares", {})
    top = max(shares.items(), key=lambda kv: kv[1]) if shares else None
    rules.append(Rule("single_generator_share", False, top is None or top[1] <= cfg.max_generator_share,
                      f"top generator {top[0]} wrote {top[1]:.0%} of synthetic rows (max {cfg.max_generator_share:.0%})"
                      if top else "no synthetic rows"))
    falling = [d for d in diversity_rows if d["warn"]]
    rules.append(Rule("diversity_drop", False, not falling,
                      "; ".join(f"{d['group']} {d['metric']} {d['previous']}->{d['current']}" for d in falling[:5])
                      or "no diversity measure fell by more than the warning level"))
    gap_score = gap.get("gap_score")
    rules.append(Rule("distribution_gap", False, gap_score is None or gap_score <= cfg.distribution_gap_warn,
                      f"gap score {gap_score} (KS {gap.get('length_ks')}, AUC {gap.get('classifier_auc')}); "
                      f"under-represented: {', '.join(gap.get('underrepresented_kinds', [])) or 'none'}"
                      if gap.get("available") else "no production traffic to compare with"))
    n_conf = len(result.ctx.conflicts)
    rules.append(Rule("conflicts_pending_review", False, n_conf == 0, f"{n_conf} conflicting examples listed for review"))
    rules.append(Rule("size_target", False, n >= cfg.target_examples, f"{n} examples (target {cfg.target_examples})"))
    return rules


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|").replace("\n", " ") for v in r) + " |" for r in rows]
    return "\n".join(lines)


def dataset_card(manifest: dict[str, Any], result: CurationResult, rubric_text: str, rubric_path: str) -> str:
    """The dataset card (markdown): sources, drops, ratios, diversity, gap, rubric, rules, hash."""
    m = manifest
    drops = Counter((d["step"], d["reason"]) for d in result.drops)
    parts = [
        f"# Training dataset {m['version']}",
        f"Content hash: `{m['content_hash']}` (sha256 of the sorted rows; the version is its first 12 hex).",
        f"Examples: **{m['counts']['train']}** (from {m['counts']['input']} input rows)."
        + (f" Previous version: `{m['previous_version']}`." if m.get("previous_version") else ""),
        "## Sources",
        _md_table(["source", "in", "in training"], [[s, c, m["counts"]["by_source"].get(s, 0)] for s, c in result.sources_in.items()]),
        "## Steps",
        _md_table(["step", "in", "out", "dropped", "flagged", "seconds"],
                  [[r.step, r.n_in, r.n_out, sum(r.dropped.values()), sum(r.flagged.values()), r.seconds] for r in result.reports]),
        "## Drop reasons",
        _md_table(["step", "reason", "count"], [[s, r, c] for (s, r), c in drops.most_common()]) if drops else "Nothing dropped.",
        "## Flagged for review (one rubric rule failed)",
        _md_table(["rule", "count"], Counter(f["rule"] for f in result.ctx.flagged).most_common()) if result.ctx.flagged else "None.",
        f"Conflicts listed for review: {len(result.ctx.conflicts)}.",
        "## Ratios",
        _md_table(["measure", "value"], [[k, v] for k, v in m["ratios"].items()]),
        "## Diversity",
        _md_table(["group", "n", "distinct-1", "distinct-2", "compression", "self-BLEU", "cluster coverage"],
                  [["overall", *(m["diversity"].get("overall", {}).get(k) for k in ("n", "distinct_1", "distinct_2", "compression_ratio", "self_bleu", "cluster_coverage"))]]
                  + [[g, *(s.get(k) for k in ("n", "distinct_1", "distinct_2", "compression_ratio", "self_bleu", "cluster_coverage"))]
                     for g, s in m["diversity"].get("groups", {}).items()]),
        f"Clusters fit on the {m['diversity'].get('reference', 'dataset')} inputs.",
    ]
    if m.get("diversity_changes"):
        parts += ["Change against the previous version (change > 0 = less diverse):",
                  _md_table(["group", "metric", "previous", "current", "change", "warn"],
                            [[d["group"], d["metric"], d["previous"], d["current"], d["change"], d["warn"]] for d in m["diversity_changes"]])]
    gap = m["production_gap"]
    parts.append("## Production distribution gap")
    if m.get("plots", {}).get("input_lengths"):
        parts.append(f"![Input length, training vs production]({m['plots']['input_lengths']})")
    if gap.get("available"):
        parts += [f"Production inputs (last weeks): {gap['production_inputs']}; median length {gap['median_words']['production']:g} "
                  f"words (training {gap['median_words']['training']:g}); KS (length) {gap['length_ks']}; "
                  f"classifier AUC {gap['classifier_auc']} (0.5 = indistinguishable); gap score {gap['gap_score']}.",
                  _md_table(["kind", "production", "training"], [[k, v["production"], v["training"]] for k, v in gap["shares"].items()]),
                  f"Too few training examples of: {', '.join(gap['underrepresented_kinds']) or 'none'}."]
    else:
        parts.append("No production traffic to compare with.")
    parts += [
        "## Quality rules",
        _md_table(["rule", "blocking", "passed", "detail"], [[r["name"], r["blocking"], r["passed"], r["message"]] for r in m["rules"]]),
        "## Warnings", "\n".join(f"- {w}" for w in m["warnings"]) or "None.",
        "## Rubric",
        f"Checked against `{rubric_path}` (sha256 `{m['rubric_sha256']}`):",
        "\n".join("> " + line for line in rubric_text.splitlines()),
    ]
    return "\n\n".join(parts) + "\n"


def _table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def read_manifest(home: FlywheelHome, version: str) -> dict[str, Any] | None:
    path = home.dataset(version) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def latest_version(home: FlywheelHome) -> str | None:
    path = home.path("datasets", "LATEST")
    return path.read_text(encoding="utf-8").strip() or None if path.exists() else None


@dataclass
class DatasetVersion:
    """A written dataset version: its id, folder, manifest and rules."""

    version: str
    path: Path
    manifest: dict[str, Any]
    rules: list[Rule]
    review_sample: list[dict[str, Any]]
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocking_failures(self) -> list[Rule]:
        return [r for r in self.rules if r.blocking and not r.passed]


def write_dataset_version(
    home: FlywheelHome,
    result: CurationResult,
    *,
    rubric_text: str,
    rubric_path: str,
    rubric_problem: str | None,
    production_inputs: Sequence[str] = (),
    created: str = "",
) -> DatasetVersion:
    """Measure (diversity, production gap), check the rules and write `datasets/<version>/`:
    train.parquet, drops.parquet, flagged.parquet, conflicts.parquet, review_sample.jsonl,
    input_lengths.png (training vs production), card.md, manifest.json. `datasets/LATEST` moves to
    it only when every blocking rule passes."""
    cfg = result.ctx.config
    rows = result.rows
    digest = content_hash(rows)
    version = digest[:12]
    previous_id = latest_version(home)
    previous = read_manifest(home, previous_id) if previous_id else None
    if previous and previous.get("version") == version:  # a rebuild: compare with what came before it
        previous_id = previous.get("previous_version")
        previous = read_manifest(home, previous_id) if previous_id else None
    inputs = [last_user_text(r["messages"]) for r in rows]
    answers = [_answer(r) for r in rows]
    diversity = diversity_report(inputs, answers, [r.get("source") or "" for r in rows], [r.get("generator") for r in rows],
                                 reference_inputs=production_inputs, seed=cfg.seed)
    changes = diversity_changes(diversity, previous.get("diversity") if previous else None, cfg.diversity_drop_warn)
    gap = production_gap(inputs, production_inputs, build_vocabulary(answers, seed=cfg.seed), seed=cfg.seed)
    rules = evaluate_rules(result, rubric_problem, changes, gap)
    n_real = sum(1 for r in rows if r.get("source") in REAL_SOURCES)
    n_syn = sum(1 for r in rows if r.get("source") == "synthetic")
    self_names = set(cfg.self_generator_names) | result.ctx.production_model_versions
    n_self = sum(1 for r in rows if is_self_generated(r, self_names))
    warnings = list(result.ctx.warnings) + [f"{r.name}: {r.message}" for r in rules if not r.blocking and not r.passed]
    manifest = {
        "version": version,
        "content_hash": digest,
        "created": created,
        "previous_version": previous_id,
        "counts": {
            "input": sum(result.sources_in.values()),
            "train": len(rows),
            "dropped": len(result.drops),
            "flagged": len(result.ctx.flagged),
            "conflicts": len(result.ctx.conflicts),
            "by_source": dict(Counter(("human_fixed" if r.get("human_fixed") else r.get("source")) for r in rows).most_common()),
            "sources_in": result.sources_in,
            "drops_by_reason": dict(Counter(d["reason"] for d in result.drops).most_common()),
        },
        "steps": [vars(r) for r in result.reports],
        "ratios": {
            "real_or_human": n_real,
            "synthetic": n_syn,
            "synthetic_per_real": round(n_syn / n_real, 3) if n_real else None,
            "self_generated_share": round(n_self / len(rows), 4) if rows else 0.0,
            "generator_shares": result.ctx.facts.get("generator_shares", {}),
        },
        "facts": {k: v for k, v in result.ctx.facts.items() if k != "generator_shares" and not k.startswith("_")},
        "diversity": diversity,
        "diversity_changes": changes,
        "production_gap": gap,
        "rules": [vars(r) for r in rules],
        "warnings": warnings,
        "plots": {"input_lengths": INPUT_LENGTHS_PNG},
        "rubric_path": rubric_path,
        "rubric_sha256": hashlib.sha256(rubric_text.encode("utf-8")).hexdigest(),
    }
    review = seeded_sample(rows, cfg.review_sample_size, cfg.seed)
    folder = home.dataset(version)
    write_parquet(pa.Table.from_pylist([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in rows], schema=EXAMPLE_SCHEMA),
                  folder / "train.parquet")
    write_parquet(_table(result.drops, DROPS_SCHEMA), folder / "drops.parquet")
    write_parquet(_table(result.ctx.flagged, FLAGGED_SCHEMA), folder / "flagged.parquet")
    write_parquet(_table(result.ctx.conflicts, CONFLICTS_SCHEMA), folder / "conflicts.parquet")
    write_jsonl([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in review], folder / "review_sample.jsonl")
    input_length_histogram(inputs, production_inputs, folder / INPUT_LENGTHS_PNG, seed=cfg.seed)
    write_text(dataset_card(manifest, result, rubric_text, rubric_path), folder / "card.md")
    write_json(manifest, folder / "manifest.json")
    dv = DatasetVersion(version, folder, manifest, rules, review, list(result.ctx.conflicts))
    if not dv.blocking_failures:
        write_text(version + "\n", home.path("datasets", "LATEST"))
    return dv


def register_review_sample(db_url: str, dv: DatasetVersion, rubric_text: str, seed: int = 0) -> str | None:
    """Send the version's review sample to the labeling decision store as batch `dataset-<version>`
    (the five-question human review); returns the batch id, or None when already registered or empty."""
    from flywheel.labeling.batches import create_sample_batch
    from flywheel.labeling.store import ReviewStore

    batch_id = f"dataset-{dv.version}"
    store = ReviewStore(db_url)
    if not dv.review_sample or store.has_batch(batch_id):
        return None
    create_sample_batch(store, batch_id, dv.review_sample, n=len(dv.review_sample), seed=seed, rubric=rubric_text,
                        source=f"datasets/{dv.version}/review_sample.jsonl")
    return batch_id


def conflict_batch_id(version: str) -> str:
    return f"conflicts-{version}"


def register_conflict_review(db_url: str, dv: DatasetVersion, rubric_text: str) -> str | None:
    """Send the version's conflicting examples (dropped ones beside the kept answer) to the decision store as
    batch `conflicts-<version>`; returns the batch id, or None when there are none or it is already registered
    (a rebuild of the same version keeps the batch and its decisions)."""
    from flywheel.labeling.batches import create_conflict_batch
    from flywheel.labeling.store import ReviewStore

    batch_id = conflict_batch_id(dv.version)
    if not dv.conflicts:
        return None
    store = ReviewStore(db_url)
    if store.has_batch(batch_id):
        return None
    create_conflict_batch(store, batch_id, dv.conflicts, rubric=rubric_text,
                          source=f"datasets/{dv.version}/conflicts.parquet")
    return batch_id


def conflict_review_status(db_url: str, version: str, n_conflicts: int) -> tuple[bool, str]:
    """(passed, message) of `conflicts_pending_review`: passes without conflicts or once the batch
    `conflicts-<version>` is complete (every item decided, or the batch closed)."""
    if n_conflicts == 0:
        return True, "no conflicting examples"
    from flywheel.labeling.store import ReviewStore

    batch_id = conflict_batch_id(version)
    store = ReviewStore(db_url)
    if not store.has_batch(batch_id):
        return False, (f"{n_conflicts} of {n_conflicts} conflicts undecided (review batch {batch_id} not registered: "
                       "materialize training_dataset again)")
    p = store.progress(batch_id)
    if p.complete:
        return True, f"{p.items} conflicts reviewed (batch {batch_id} {p.state})"
    return False, (f"{p.items - p.decided} of {p.items} conflicts undecided "
                   f"(review batch {batch_id}: `flywheel review --batch {batch_id}`)")


# --- reading the inputs of a build -------------------------------------------------------------------
def read_examples(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """EXAMPLE_SCHEMA rows of the given Parquet files (missing files are skipped)."""
    return read_parquet(paths, schema=EXAMPLE_SCHEMA).to_pylist()


def read_eval_items(path: Path) -> EvalItems:
    return EvalItems(read_examples([path]) if path.exists() else None, str(path))
