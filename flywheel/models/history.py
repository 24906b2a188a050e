"""The fixed-set score history: one registry row per evaluation cycle, as rows, a markdown table
and a plot (table `model_evaluations` of `flywheel.models.registry`)."""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa

from flywheel.core.markdown import markdown_table
from flywheel.core.storage import StoragePath, atomic_path, storage_path
from flywheel.models.registry import engine_for, model_evaluations, now_utc


def record_evaluation(engine_or_url: sa.Engine | str, summary: dict[str, Any], outcome: str) -> None:
    """Append one cycle to the score history from an evaluation summary (see flywheel.evaluation.cycle).

    `outcome` is the gate's verdict: promoted (stored as `passed` until `champion_model` promotes it),
    held or blocked. The interval stored is the one the gate judged by (bootstrap, widened by the
    training-seed spread when measured)."""
    engine = engine_for(engine_or_url)
    primary = summary["primary_metric"]
    overall = dict(summary["overall"][primary])
    judged = (summary.get("gate") or {}).get("overall") or {}
    if judged:
        overall["ci_low"], overall["ci_high"] = judged["low"], judged["high"]
    gate_passed = outcome == "promoted"
    slices = {s: {"candidate": v["metrics"][primary]["candidate"], "champion": v["metrics"][primary]["champion"]}
              for s, v in summary["slices"].items()}
    with engine.begin() as conn:
        conn.execute(model_evaluations.insert().values(
            candidate=summary["candidate"], champion=summary["champion"],
            eval_set_version=summary["eval_set_version"], eval_set_hash=summary["eval_set_hash"],
            primary_metric=primary, candidate_score=overall["candidate"], champion_score=overall["champion"],
            diff=overall["diff"], ci_low=overall["ci_low"], ci_high=overall["ci_high"],
            slices=json.dumps(slices, sort_keys=True), gate_passed=gate_passed,
            outcome="passed" if gate_passed else outcome, at=now_utc()))


def score_history(engine_or_url: sa.Engine | str, eval_set_version: int) -> list[dict[str, Any]]:
    """The fixed-set score of every evaluation cycle of one eval-set version, oldest first.

    Each row: cycle, at, candidate, champion, primary_metric, candidate_score, champion_score, diff,
    ci_low, ci_high, slices {slice: {candidate, champion}}, gate_passed, outcome (passed | promoted | held | blocked;
    `rejected` in histories written before the three verdicts).
    """
    engine = engine_for(engine_or_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(model_evaluations)
                            .where(model_evaluations.c.eval_set_version == eval_set_version)
                            .order_by(model_evaluations.c.id)).all()
    out = []
    for i, r in enumerate(rows, start=1):
        m = dict(r._mapping)
        m.pop("id")
        m["slices"] = json.loads(m["slices"]) if m["slices"] else {}
        m["cycle"] = i
        out.append(m)
    return out


def score_history_markdown(rows: list[dict[str, Any]], limit: int = 20) -> str:
    """The score history (newest `limit` cycles) as a markdown table."""
    if not rows:
        return "No evaluations yet."
    metric = rows[-1]["primary_metric"]
    body = [
        (r["cycle"], r["candidate"], r["champion"], f"{r['candidate_score']:.4f}", f"{r['champion_score']:.4f}",
         f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", r["outcome"])
        for r in rows[-limit:]
    ]
    return markdown_table(["cycle", "candidate", "vs", metric, "champion", "Δ (95% CI)", "outcome"], body)


def plot_score_history(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> StoragePath:
    """A PNG of the fixed-set score per cycle: overall and per-slice lines of the evaluated
    candidate, the champion's score, and markers for promoted (green) vs rejected (red) cycles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = storage_path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        cycles = [r["cycle"] for r in rows]
        metric = rows[0]["primary_metric"] if rows else "score"
        if rows:
            ax.plot(cycles, [r["candidate_score"] for r in rows], color="black", linewidth=2, label="candidate (overall)")
            ax.plot(cycles, [r["champion_score"] for r in rows], color="grey", linestyle="--", label="champion (overall)")
            slices = sorted({s for r in rows for s in r["slices"]})
            for s in slices:
                ys = [r["slices"].get(s, {}).get("candidate", float("nan")) for r in rows]
                ax.plot(cycles, ys, linewidth=1, alpha=0.7, label=f"slice {s}")
            for outcome, color, marker in (("promoted", "green", "^"), ("passed", "blue", "o"), ("held", "orange", "s"),
                                           ("blocked", "red", "x"), ("rejected", "red", "x")):
                pts = [(r["cycle"], r["candidate_score"]) for r in rows if r["outcome"] == outcome]
                if pts:
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, s=80,
                               zorder=5, label=outcome)
            ax.set_xticks(cycles)
        else:
            ax.text(0.5, 0.5, "no evaluations yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("evaluation cycle")
        ax.set_ylabel(f"{metric} (0-1)")
        ax.set_title("fixed eval set: score per cycle")
        ax.grid(alpha=0.3)
        if rows:
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
