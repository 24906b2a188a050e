"""Answer metrics on a 0-1 scale: exact match, token F1, chrF, format compliance, an LLM judge;
the paired bootstrap confidence interval of a candidate-minus-champion difference; and the scoring
and per-slice summary of a model's answers on the eval items.

Every metric returns a float in [0, 1] (chrF is sacrebleu's sentence chrF divided by 100), so
differences and tolerances mean the same thing for every metric. Exact match and token F1 compare
`flywheel.core.text.answer_match_form`; format compliance is the project's
`flywheel.curation.answer_format.AnswerFormat`. The judge may return NaN for an answer it could not
grade; aggregates skip those pairs and count them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from flywheel.core.errors import InputError
from flywheel.core.text import answer_match_form
from flywheel.curation.answer_format import AnswerFormat
from flywheel.evaluation.eval_set import EvalItem
from flywheel.evaluation.judge import LLMJudge

BOOTSTRAP_SEED = 0


@cache
def _chrf_metric() -> Any:
    """sacrebleu's chrF, imported on first use (the code location starts faster)."""
    from sacrebleu.metrics import CHRF

    return CHRF()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(answer_match_form(prediction) == answer_match_form(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 over normalised whitespace tokens (1.0 when both are empty)."""
    pred, ref = answer_match_form(prediction).split(), answer_match_form(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def chrf(prediction: str, reference: str) -> float:
    """sacrebleu sentence chrF, scaled to 0-1."""
    if not prediction and not reference:
        return 1.0
    return _chrf_metric().sentence_score(prediction, [reference]).score / 100.0


METRIC_FUNCTIONS = {"exact_match": exact_match, "token_f1": token_f1, "chrf": chrf}


# --- paired bootstrap ------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedDifference:
    """Mean candidate-minus-champion difference with a percentile bootstrap confidence interval."""

    candidate: float
    champion: float
    diff: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
        }


def paired_bootstrap(
    candidate: Sequence[float],
    champion: Sequence[float],
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Resample item indices (the same for both models) `samples` times; pairs with a NaN are skipped."""
    a = np.asarray(candidate, dtype=float)
    b = np.asarray(champion, dtype=float)
    if a.shape != b.shape:
        raise InputError(f"paired bootstrap needs equal lengths, got {a.shape[0]} and {b.shape[0]}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.shape[0])
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))
    means = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return PairedDifference(float(a.mean()), float(b.mean()), float(d.mean()), float(lo), float(hi), n)


# --- scoring ---------------------------------------------------------------------------------
def score_answers(
    items: Sequence[EvalItem],
    answers: Sequence[str],
    metrics: Sequence[str],
    answer_format: AnswerFormat | None = None,
    judge: LLMJudge | None = None,
) -> dict[str, list[float]]:
    """Per-item scores (0-1) of each metric; `judge` is needed when `judge` is among the metrics."""
    if len(items) != len(answers):
        raise InputError(f"{len(items)} eval items but {len(answers)} answers")
    rule = answer_format or AnswerFormat()
    scores: dict[str, list[float]] = {}
    for metric in metrics:
        if metric in METRIC_FUNCTIONS:
            fn = METRIC_FUNCTIONS[metric]
            scores[metric] = [fn(a, it.reference) for it, a in zip(items, answers, strict=True)]
        elif metric == "format":
            scores[metric] = [rule.score(a) for a in answers]
        elif metric == "judge":
            if judge is None:
                raise InputError("metric `judge` needs evaluation.judge (base_url, model) in flywheel.yaml")
            scores[metric] = [judge.score(it.question, it.reference, a) for it, a in zip(items, answers, strict=True)]
        else:
            raise InputError(f"unknown metric {metric!r}")
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
