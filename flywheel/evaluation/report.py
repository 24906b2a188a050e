"""What an evaluation shows a person: the answers table (one row per item, both models, every metric)
and markdown tables of the scores per slice, the worst regressions, and the eval set's slices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from flywheel.core.markdown import markdown_table
from flywheel.evaluation.eval_set import EvalItem

CELL_CHARS = 60


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


def worst_regressions_markdown(answers: pa.Table, metric: str, limit: int = 10) -> str:
    """A markdown table of the items where the candidate lost most to the champion on `metric`."""
    rows = answers.to_pylist()
    scored = [(r[f"candidate_{metric}"] - r[f"champion_{metric}"], r) for r in rows
              if not (math.isnan(r[f"candidate_{metric}"]) or math.isnan(r[f"champion_{metric}"]))]
    worst = [x for x in sorted(scored, key=lambda x: x[0]) if x[0] < 0][:limit]
    if not worst:
        return f"No item where the candidate scores below the champion on {metric}."
    body = [(r["slice"], r["input"], r["reference"], r["candidate_answer"], r["champion_answer"], f"{d:+.3f}")
            for d, r in worst]
    return markdown_table(["slice", "input", "reference", "candidate", "champion", f"Δ {metric}"], body,
                          limit=CELL_CHARS)


def summary_markdown(summary: dict[str, Any]) -> str:
    """Overall and per-slice scores of candidate vs champion as a markdown table."""
    metrics = list(summary["overall"])

    def cells(block: dict[str, Any]) -> list[str]:
        return [f"{block[m]['candidate']:.3f} / {block[m]['champion']:.3f} ({block[m]['diff']:+.3f}, "
                f"[{block[m]['ci_low']:+.3f}, {block[m]['ci_high']:+.3f}])" for m in metrics]

    body = [["**overall**", summary["n_items"], *cells(summary["overall"])]]
    body += [[s, v["n"], *cells(v["metrics"])] for s, v in summary["slices"].items()]
    return markdown_table(["scope", "n", *(f"{m} cand / champ (Δ, 95% CI)" for m in metrics)], body)


def slice_counts_markdown(slices: dict[str, int]) -> str:
    """Items per slice as a markdown table."""
    return markdown_table(["slice", "items"], list(slices.items()))
