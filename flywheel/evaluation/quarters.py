"""The retrain chain per quarter, seen from evaluation: which model a quarter's evaluation judges, its
verdict recorded on the quarter, whether its candidate may replace the champion, and the score per quarter.

Rule: only the newest retrained quarter's candidate may become the champion. A backfill of past
quarters (to measure, say, a curation-rule change on the data each quarter had) trains and evaluates
every quarter on the frozen eval set and records their scores, and leaves the champion alone.
"""

from __future__ import annotations

from typing import Any

from flywheel.core.errors import StateError
from flywheel.core.markdown import markdown_table
from flywheel.core.quarters import all_quarters, newest_quarter, quarter_label, read_quarter, update_quarter
from flywheel.core.storage import FlywheelHome
from flywheel.evaluation.gate import GateDecision
from flywheel.models.artifact import ModelArtifact, read_artifact


def quarter_candidate(home: FlywheelHome, quarter: str) -> ModelArtifact:
    """The model trained for `quarter` (recorded by its `lora_adapter`); StateError when none was."""
    version = read_quarter(home, quarter).get("model_version")
    if not version:
        raise StateError(f"{quarter_label(quarter)}: no model trained for this quarter yet "
                         "(materialize lora_adapter for the quarter first)")
    return read_artifact(home, str(version))


def record_quarter_verdict(home: FlywheelHome, quarter: str, summary: dict[str, Any], decision: GateDecision) -> None:
    """The quarter's evaluation: candidate, champion, primary score and difference with its interval."""
    primary = summary["primary_metric"]
    o = summary["overall"][primary]
    interval = decision.overall
    update_quarter(
        home, quarter, model_version=summary["candidate"], outcome=decision.outcome, champion=summary["champion"],
        metric=primary, score=round(float(o["candidate"]), 4), champion_score=round(float(o["champion"]), 4),
        diff=round(float(o["diff"]), 4),
        interval=[round(interval.low, 4), round(interval.high, 4)] if interval else None,
        reasons=list(decision.reasons[:3]),
    )


def promotion_refusal(home: FlywheelHome, quarter: str) -> str | None:
    """Why `quarter`'s candidate may not become the champion (a newer quarter was retrained), else None."""
    newest = newest_quarter(home)
    if newest is not None and quarter < newest:
        return (f"{quarter_label(quarter)} is not the newest retrained quarter ({quarter_label(newest)}): "
                "a past quarter's retrain is recorded and scored but never replaces the champion")
    return None


def quarters_markdown(home: FlywheelHome) -> str:
    """Score per quarter: dataset, model, verdict, primary score and difference to the champion of its day."""
    rows = []
    for r in all_quarters(home):
        interval = r.get("interval")
        rows.append([r["label"], r.get("dataset_version") or "-", r.get("model_version") or "-", r.get("outcome") or "-",
                     f"{r['score']:.3f}" if r.get("score") is not None else "-",
                     f"{r['diff']:+.3f}" if r.get("diff") is not None else "-",
                     f"[{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "-"])
    if not rows:
        return "no quarter retrained yet"
    return markdown_table(["quarter", "dataset", "model", "verdict", "score", "vs champion", "95% interval"], rows)
