"""The gate: the verdict on a candidate from its evaluation summary, promoted | held | blocked, with its
reasons in words and numbers; the refusal of a candidate whose training data holds eval items or whose
evaluation ran on another eval set than the frozen one; and what an eval set of a given size can detect."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from flywheel.config import CurationConfig, EvaluationConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome, read_table
from flywheel.core.text import last_user_text
from flywheel.evaluation.judge_calibration import gate_metric
from flywheel.training.data import find_eval_leaks

PROMOTED, HELD, BLOCKED = "promoted", "held", "blocked"
OUTCOMES = (PROMOTED, HELD, BLOCKED)
Z_95 = 1.959964  # two-sided 95%
Z_POWER_80 = 0.841621  # one-sided 80% power
MDE_FACTOR = Z_95 + Z_POWER_80  # minimum detectable difference = this x the standard error of the difference


@dataclass(frozen=True)
class Interval:
    """A candidate-minus-champion difference and the interval the gate judges it by."""

    diff: float
    low: float
    high: float
    n: int
    bootstrap_low: float
    bootstrap_high: float
    seed_sd: float = 0.0

    @property
    def mde(self) -> float:
        """Minimum detectable difference (95% two-sided, 80% power) at this interval's standard error."""
        return MDE_FACTOR * (self.high - self.low) / (2 * Z_95)

    def text(self) -> str:
        extra = f", seed sd {self.seed_sd:.4f}" if self.seed_sd else ""
        return f"{self.diff:+.4f} [{self.low:+.4f}, {self.high:+.4f}] (n={self.n}{extra})"

    def as_dict(self) -> dict[str, float | int]:
        return {"diff": self.diff, "low": self.low, "high": self.high, "n": self.n, "bootstrap_low": self.bootstrap_low,
                "bootstrap_high": self.bootstrap_high, "seed_sd": self.seed_sd, "mde": self.mde}


def widened(stats: dict[str, Any], seed_sd: float = 0.0) -> Interval:
    """The paired-bootstrap interval of `stats` (diff, ci_low, ci_high, n) widened by training-seed noise:
    each half-width becomes sqrt(half^2 + (1.96 * seed_sd)^2), so the interval covers both the eval
    sample and the spread of retraining the same data with other seeds."""
    d, lo, hi = float(stats["diff"]), float(stats["ci_low"]), float(stats["ci_high"])
    seed_half = Z_95 * seed_sd
    return Interval(d, d - math.hypot(d - lo, seed_half), d + math.hypot(hi - d, seed_half), int(stats.get("n", 0)),
                    lo, hi, seed_sd)


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict (promoted | held | blocked) with its reasons in words and numbers."""

    outcome: str
    reasons: list[str] = field(default_factory=list)
    overall: Interval | None = None
    slices: dict[str, Interval] = field(default_factory=dict)
    underpowered: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Only a promoted candidate may replace the champion."""
        return self.outcome == PROMOTED

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "passed": self.passed, "reasons": list(self.reasons),
                "overall": self.overall.as_dict() if self.overall else None,
                "slices": {s: v.as_dict() for s, v in self.slices.items()}, "underpowered": list(self.underpowered)}


def gate(summary: dict[str, Any], config: EvaluationConfig, leaks: Sequence[dict[str, str]] = (),
         leak_problem: str | None = None, frozen_hash: str | None = None) -> GateDecision:
    """The promotion rule, on evidence.

    - **blocked**: an eval leak (items of the eval set in the candidate's training data, or training data
      that cannot be checked), an evaluation on an eval set other than the frozen one of its version,
      the overall interval entirely below zero (a regression), or a slice whose interval lies entirely
      below `-slice_tolerance`.
    - **promoted**: the overall interval's lower bound is above `min_improvement` and no slice is blocked
      or in doubt.
    - **held**: anything else (no evidence either way): the interval contains `min_improvement`, or a slice
      dropped by more than the tolerance without an interval that proves it (too few items to judge).

    Intervals are the paired bootstrap over eval items widened by the training-seed spread when seed
    replicates were measured (`summary["seed_spread"]`). Slices whose minimum detectable difference is
    wider than the tolerance are named as under-powered. A `judge` primary metric votes only while its
    calibration against reviewers holds (`judge_calibration.gate_metric`); else the reasons say why not.
    """
    primary, vote = gate_metric(config, summary.get("judge_calibration"))
    if primary is None:  # the judge is the only metric and has not earned its vote
        refused = _refusals(summary, leaks, leak_problem, frozen_hash)
        return GateDecision(BLOCKED if refused else HELD, [*refused, str(vote)])
    overall_stats = summary["overall"].get(primary)
    if overall_stats is None:
        raise InputError(f"primary metric {primary!r} was not computed (add it to evaluation.metrics)")
    spread = summary.get("seed_spread") or {}
    overall = widened(overall_stats, float(spread.get("overall", 0.0) or 0.0))
    versus = f"base model {summary.get('base_model')}" if summary.get("champion_is_base") else f"champion {summary['champion']}"
    head = f"{primary} {overall_stats['candidate']:.4f} vs {versus} {overall_stats['champion']:.4f}: difference {overall.text()}"
    slices = {s: widened(v["metrics"][primary], float((spread.get("slices") or {}).get(s, spread.get("overall", 0.0)) or 0.0))
              for s, v in summary["slices"].items() if primary in v["metrics"]}
    tol = config.slice_tolerance
    underpowered = sorted(s for s, iv in slices.items() if iv.mde > tol)

    blocked = _refusals(summary, leaks, leak_problem, frozen_hash)
    held: list[str] = []
    if summary["candidate"] == summary["champion"]:
        held.append(f"{summary['candidate']} is already the champion")
    if overall.high < 0:
        blocked.append(f"regression: {head}: the whole interval is below 0")
    for s, iv in slices.items():
        n_text = f"slice '{s}' ({iv.n} items)"
        if iv.high < -tol:
            blocked.append(f"slice regression: {n_text}: {primary} {iv.text()}, entirely below -{tol:g} (slice_tolerance)")
        elif iv.diff < -tol:
            held.append(f"{n_text}: {primary} dropped by {-iv.diff:.4f} (more than slice_tolerance {tol:g}) but its "
                        f"interval {iv.text()} cannot tell a regression from noise: too few items to judge")
    notes = ([vote] if vote else []) + [f"under-powered slice '{s}' ({slices[s].n} items): it can only detect differences above "
             f"{slices[s].mde:.3f}, wider than slice_tolerance {tol:g}" for s in underpowered]
    if spread:
        notes.append(f"training-seed spread of {primary} measured over {spread.get('runs', '?')} trainings: "
                     f"sd {float(spread.get('overall', 0.0)):.4f} (widens every interval)")
    if blocked:
        return GateDecision(BLOCKED, blocked + held + notes, overall, slices, underpowered)
    if overall.low <= config.min_improvement:
        held.insert(0, f"no evidence of improvement: {head}; the lower bound {overall.low:+.4f} is not above "
                       f"min_improvement {config.min_improvement:g}")
    if held:
        return GateDecision(HELD, held + notes, overall, slices, underpowered)
    return GateDecision(PROMOTED, [f"improvement: {head}; lower bound {overall.low:+.4f} above min_improvement "
                                   f"{config.min_improvement:g}; no slice below -{tol:g}"] + notes,
                        overall, slices, underpowered)


def _refusals(summary: dict[str, Any], leaks: Sequence[dict[str, str]], leak_problem: str | None,
              frozen_hash: str | None) -> list[str]:
    """What refuses a candidate whatever its scores: an eval leak, unchecked training data, another eval set."""
    refused = [f"refused: {leak_problem}"] if leak_problem else []
    if leaks:
        shown = ", ".join(f"{x['example_id']} ({x['input'][:40]!r})" for x in list(leaks)[:5])
        refused.append(f"eval leak: {len(leaks)} eval item(s) appear in the candidate's training data "
                       f"(dataset {summary.get('dataset_version')}): {shown}")
    if frozen_hash is not None and summary.get("eval_set_hash") != frozen_hash:
        refused.append(f"evaluated on eval set {summary.get('eval_set_hash')}, not the frozen {frozen_hash} of eval set "
                       f"version {summary.get('eval_set_version')}: the score cannot be compared")
    return refused


def minimum_detectable_difference(scores: Sequence[float]) -> float:
    """The difference a paired comparison on these items can detect (95% two-sided, 80% power), from one
    model's per-item scores: MDE = 2.80 x sqrt(2) x sd / sqrt(n), i.e. two models with this spread whose
    errors are independent (paired differences usually vary less, so this errs on the wide side)."""
    values = [float(x) for x in scores if not math.isnan(float(x))]
    if len(values) < 2:
        return math.inf
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))
    return MDE_FACTOR * math.sqrt(2.0) * sd / math.sqrt(len(values))


# --- leaks -----------------------------------------------------------------------------------
def leaked_eval_items(eval_table: pa.Table, train_table: pa.Table,
                      config: CurationConfig | None = None) -> list[dict[str, str]]:
    """Eval items whose input (last user turn, normalised) also appears as a training input: the same
    check training runs before its first step (`flywheel.training.data.find_eval_leaks`), from the eval side."""
    evals = eval_table.select(["example_id", "messages"]).to_pylist()
    leaked = {lk.eval_row for lk in find_eval_leaks(train_table.column("messages").to_pylist(),
                                                     [r["messages"] for r in evals], config)}
    return [{"example_id": evals[i]["example_id"], "input": last_user_text(evals[i]["messages"])} for i in sorted(leaked)]


def training_data_leaks(home: FlywheelHome, dataset_version: str | None, eval_table: pa.Table,
                        config: CurationConfig | None = None) -> tuple[list[dict[str, str]], str | None]:
    """(leaked eval items, problem) for a candidate's dataset version; `problem` says why the training
    data could not be checked (which is itself a refusal)."""
    if not dataset_version:
        return [], "the candidate's manifest names no dataset_version, so its training data cannot be checked for eval leaks"
    train_path = home.dataset(dataset_version) / "train.parquet"
    if not train_path.exists():
        return [], f"{train_path}: training data of the candidate not found, so it cannot be checked for eval leaks"
    return leaked_eval_items(eval_table, read_table(train_path, columns=["messages"]), config), None
