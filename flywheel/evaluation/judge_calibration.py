"""Does the LLM judge agree with people? Its verdicts on items reviewers already decided (pass / fix /
reject), their agreement (Cohen's kappa, `labeling.agreement.cohens_kappa`, and accuracy per verdict),
and whether the gate may use it (`gate_metric`).

The judge grades the answer reviewers saw (no reference: a reviewer had none) on its 1-5 scale; a
grade >= `evaluation.judge.pass_min_grade` is its pass, <= `reject_max_grade` its reject, in between
its fix. The most recent `calibration_items` decided items are graded (newest decisions first). Items
the judge could not grade (the endpoint failed, the reply held no grade) are counted and left out of
the agreement. The judge earns its vote only with kappa above `min_kappa` on at least
`min_calibration_items` graded items; otherwise the gate ignores it and says why.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from flywheel.config import EvaluationConfig, JudgeConfig
from flywheel.evaluation.judge import JudgeError, LLMJudge
from flywheel.labeling.agreement import cohens_kappa
from flywheel.labeling.decisions import resolve_decisions
from flywheel.labeling.store import VERDICTS, ReviewStore

NO_REFERENCE = "(none: grade the answer against the rubric alone)"
MAX_CONSECUTIVE_FAILURES = 3  # an endpoint that fails this often in a row is down: the remaining items are not sent
ERRORS_KEPT = 5


@dataclass(frozen=True)
class DecidedItem:
    """A review item with its resolved human verdict."""

    batch_id: str
    item_id: str
    question: str
    answer: str
    verdict: str
    decided_at: str


def recent_decided_items(store: ReviewStore, limit: int) -> list[DecidedItem]:
    """The `limit` most recently decided items of every batch that show a question and an answer."""
    found: list[DecidedItem] = []
    for batch_id in store.batch_ids():
        decisions = store.decisions(batch_id)
        if not decisions:
            continue
        latest = {}
        for d in decisions:
            latest[d.item_id] = max(latest.get(d.item_id, d.updated_at), d.updated_at)
        resolved = resolve_decisions(decisions)
        for it in store.items(batch_id):
            r = resolved.get(it["item_id"])
            question = it.get("input_text") or ""
            if r is None or not question.strip() or it.get("output") is None:
                continue
            found.append(DecidedItem(batch_id, it["item_id"], question, it["output"], r.verdict,
                                     latest[it["item_id"]].isoformat()))
    found.sort(key=lambda x: (x.decided_at, x.batch_id, x.item_id), reverse=True)
    return found[:limit]


def grade_verdict(score: float, cfg: JudgeConfig) -> str:
    """The judge's verdict for a 0-1 score ((grade - 1) / 4)."""
    grade = 1.0 + 4.0 * score
    if grade >= cfg.pass_min_grade:
        return "pass"
    return "reject" if grade <= cfg.reject_max_grade else "fix"


@dataclass
class JudgeCalibration:
    """The judge against people: counts (read = graded + unparsed + failed + not_sent), agreement, and
    whether the gate may use it (`trusted`, `reason`)."""

    read: int
    graded: int
    unparsed: int
    failed: int
    not_sent: int
    kappa: float | None
    accuracy: float | None
    per_verdict: dict[str, dict[str, Any]]  # human verdict -> items, agreed, accuracy
    confusion: dict[str, dict[str, int]]  # human verdict -> judge verdict -> items
    min_kappa: float
    min_items: int
    trusted: bool
    reason: str
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(pairs: Sequence[tuple[str, str]]) -> tuple[float | None, float | None, dict[str, dict[str, Any]],
                                                        dict[str, dict[str, int]]]:
    """(kappa, accuracy, accuracy per human verdict, confusion) of (human, judge) verdict pairs."""
    confusion = {h: {j: 0 for j in VERDICTS} for h in VERDICTS}
    for h, j in pairs:
        confusion[h][j] += 1
    per = {}
    for h in VERDICTS:
        n = sum(confusion[h].values())
        per[h] = {"items": n, "agreed": confusion[h][h], "accuracy": confusion[h][h] / n if n else None}
    accuracy = sum(h == j for h, j in pairs) / len(pairs) if pairs else None
    return cohens_kappa(pairs), accuracy, per, confusion


def calibrate_judge(judge: LLMJudge, store: ReviewStore, cfg: JudgeConfig) -> JudgeCalibration:
    """Grade the most recent human-decided items with `judge` and measure the agreement. An endpoint that
    errors, rate-limits past its retries or replies without a grade costs those items, never the run."""
    items = recent_decided_items(store, cfg.calibration_items)
    pairs: list[tuple[str, str]] = []
    errors: list[str] = []
    unparsed = failed = streak = 0
    sent = 0
    for it in items:
        if streak >= MAX_CONSECUTIVE_FAILURES:
            break
        sent += 1
        try:
            score = judge.score(it.question, NO_REFERENCE, it.answer)
        except JudgeError as exc:
            failed += 1
            streak += 1
            if len(errors) < ERRORS_KEPT:
                errors.append(f"item {it.item_id} of batch {it.batch_id}: {exc}")
            continue
        streak = 0
        if math.isnan(score):
            unparsed += 1
            continue
        pairs.append((it.verdict, grade_verdict(score, cfg)))
    kappa, accuracy, per, confusion = agreement(pairs)
    not_sent = len(items) - sent
    trusted, reason = _trust(kappa, len(pairs), cfg, Counter({"failed": failed, "unparsed": unparsed, "not_sent": not_sent}))
    return JudgeCalibration(len(items), len(pairs), unparsed, failed, not_sent, kappa, accuracy, per, confusion,
                            cfg.min_kappa, cfg.min_calibration_items, trusted, reason, errors)


def _trust(kappa: float | None, graded: int, cfg: JudgeConfig, lost: Counter[str]) -> tuple[bool, str]:
    lost_text = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in lost.items() if n)
    lost_text = f" ({lost_text})" if lost_text else ""
    if graded < cfg.min_calibration_items:
        return False, (f"judge graded only {graded} human-decided item(s){lost_text}, fewer than "
                       f"evaluation.judge.min_calibration_items {cfg.min_calibration_items}")
    if kappa is None or kappa <= cfg.min_kappa:
        return False, (f"judge's Cohen's kappa with reviewers {kappa if kappa is None else round(kappa, 3)} on {graded} "
                       f"items{lost_text} is not above evaluation.judge.min_kappa {cfg.min_kappa:g}")
    return True, f"judge's Cohen's kappa with reviewers {kappa:.3f} on {graded} items{lost_text} is above {cfg.min_kappa:g}"


def gate_metric(config: EvaluationConfig, calibration: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(the metric the gate judges by, a note for its reasons). The primary metric, unless it is the
    judge and the judge has not earned its vote (no calibration, or `trusted` false): then the first
    other computed metric of `evaluation.metrics` (None when there is none)."""
    primary = config.primary_metric
    if primary != "judge":
        return primary, None
    if calibration and calibration.get("trusted"):
        return primary, f"judge trusted: {calibration.get('reason')}"
    why = (calibration or {}).get("reason") or "the judge was not calibrated against human verdicts"
    fallback = next((m for m in config.metrics if m != "judge"), None)
    if fallback is None:
        return None, f"judge ignored: {why}; no other metric is computed, so there is no evidence either way"
    return fallback, f"judge ignored: {why}; the gate judges by {fallback} instead"
