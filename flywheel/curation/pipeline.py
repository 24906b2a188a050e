"""Curation: merge the example rows of every source and run the steps over them.

Each step (`curation.steps`, in the order of DEFAULT_STEPS) reports rows in and out, drops per
reason, flags per rule and its seconds (datatrove style); every dropped example keeps its step,
reason, detail and the example kept instead. Rows in = rows out + rows dropped, for every step.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flywheel.config import CurationConfig
from flywheel.core.errors import require
from flywheel.curation.context import CurationContext, EvalItems, ReviewInputs, Step, StepReport
from flywheel.curation.steps import DEFAULT_STEPS


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
        n_dropped = sum(reports[-1].dropped.values())
        require(n_in == len(rows) + n_dropped,
                f"curation step {step.name} lost rows: {n_in} in, {len(rows)} out, {n_dropped} dropped")
    return rows, reports


def sort_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """The order rows enter the steps in (so the result does not depend on input order)."""
    return (row["example_id"], row.get("source") or "", row.get("lineage") or "")


def curate(examples: Sequence[dict[str, Any]], config: CurationConfig, eval_items: EvalItems | None = None,
           production_model_versions: set[str] | None = None, steps: Sequence[Step] | None = None,
           reviews: ReviewInputs | None = None) -> CurationResult:
    """Merge the example rows of every source and run the curation steps (sorted by id first, so the
    result does not depend on input order). `reviews`: the source files' admission and the conflict
    verdicts to apply (`curation.admission`, `curation.review_batches`)."""
    ctx = CurationContext(config=config, eval_items=eval_items or EvalItems(None),
                          production_model_versions=set(production_model_versions or ()),
                          reviews=reviews or ReviewInputs())
    rows = sorted((dict(r) for r in examples), key=sort_key)
    sources_in = dict(Counter(("human_fixed" if r.get("human_fixed") else r.get("source")) for r in rows).most_common())
    rows, reports = run_steps(rows, ctx, steps)
    rows.sort(key=lambda r: r["example_id"])
    require(len(examples) == len(rows) + len(ctx.drops),
            f"curation lost rows: {len(examples)} in, {len(rows)} kept, {len(ctx.drops)} dropped")
    return CurationResult(rows=rows, reports=reports, ctx=ctx, sources_in=sources_in)
