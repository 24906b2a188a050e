"""The gate: the verdict on a candidate from its evaluation summary (passes, with reasons in words
and numbers, or not), including the refusal of a candidate whose training data holds eval items."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flywheel.config import EvaluationConfig
from flywheel.core.storage import FlywheelHome
from flywheel.core.text import last_user_text
from flywheel.training.data import find_eval_leaks


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


# --- leaks -----------------------------------------------------------------------------------
def leaked_eval_items(eval_table: pa.Table, train_table: pa.Table) -> list[dict[str, str]]:
    """Eval items whose input (last user turn, normalised) also appears as a training input: the same
    check training runs before its first step (`flywheel.training.data.find_eval_leaks`), from the eval side."""
    evals = eval_table.select(["example_id", "messages"]).to_pylist()
    leaked = {lk.eval_row for lk in find_eval_leaks(train_table.column("messages").to_pylist(), [r["messages"] for r in evals])}
    return [{"example_id": evals[i]["example_id"], "input": last_user_text(evals[i]["messages"])} for i in sorted(leaked)]


def training_data_leaks(home: FlywheelHome, dataset_version: str | None, eval_table: pa.Table) -> tuple[list[dict[str, str]], str | None]:
    """(leaked eval items, problem) for a candidate's dataset version; `problem` says why the training
    data could not be checked (which is itself a refusal)."""
    if not dataset_version:
        return [], "the candidate's manifest names no dataset_version, so its training data cannot be checked for eval leaks"
    train_path = home.dataset(dataset_version) / "train.parquet"
    if not train_path.exists():
        return [], f"{train_path}: training data of the candidate not found, so it cannot be checked for eval leaks"
    return leaked_eval_items(eval_table, pq.read_table(train_path, columns=["messages"])), None
