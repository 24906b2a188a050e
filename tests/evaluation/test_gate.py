"""The gate's three outcomes from constructed summaries: promoted on a lower bound above min_improvement,
held inside the noise, blocked on a regression, a slice regression, an eval leak or a changed eval set."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flywheel.config import EvaluationConfig
from flywheel.core.records import examples_table, make_example
from flywheel.evaluation.eval_set import load_eval_set
from flywheel.evaluation.gate import (
    BLOCKED,
    HELD,
    PROMOTED,
    gate,
    leaked_eval_items,
    minimum_detectable_difference,
    widened,
)
from tests.evaluation.eval_files import eval_rows, write_eval_file


def test_find_eval_leaks_matches_normalized_inputs(tmp_path: Path) -> None:
    table = load_eval_set(write_eval_file(tmp_path / "e.jsonl", eval_rows(10))).table
    train = examples_table([make_example([{"role": "user", "content": "  CLEAN   q0 "},
                                          {"role": "assistant", "content": "other"}], "real"),
                            make_example([{"role": "user", "content": "clean q0 extra"},
                                          {"role": "assistant", "content": "x"}], "real")])
    leaks = leaked_eval_items(table, train)
    assert [x["input"] for x in leaks] == ["clean q0"]


def _summary(overall: float, slices: dict[str, float], champion_is_base: bool = False, champ: float = 0.5,
             half: float = 0.01, slice_half: float = 0.01, **extra: object) -> dict:
    def block(d: float, h: float) -> dict:
        return {"chrf": {"candidate": champ + d, "champion": champ, "diff": d, "ci_low": d - h, "ci_high": d + h, "n": 40}}

    return {"candidate": "v2", "champion": "base:tiny" if champion_is_base else "v1", "champion_is_base": champion_is_base,
            "base_model": "tiny", "dataset_version": "ds", "eval_set_hash": "h1", "eval_set_version": 1,
            "overall": block(overall, half), "slices": {s: {"n": 40, "metrics": block(d, slice_half)} for s, d in slices.items()},
            **extra}


def test_promoted_when_the_lower_bound_clears_min_improvement() -> None:
    d = gate(_summary(0.05, {"clean": 0.06, "messy": 0.0}), EvaluationConfig(min_improvement=0.01))
    assert d.outcome == PROMOTED and d.passed and "champion v1" in d.reasons[0]
    assert d.overall is not None and d.overall.low == pytest.approx(0.04)


def test_a_tiny_difference_inside_a_wide_interval_is_held_not_promoted() -> None:
    d = gate(_summary(0.0001, {"clean": 0.0001}, half=0.06, slice_half=0.06), EvaluationConfig())
    assert d.outcome == HELD and not d.passed and "no evidence of improvement" in d.reasons[0]


def test_held_below_min_improvement_and_on_a_tie() -> None:
    d = gate(_summary(0.02, {"clean": 0.02}), EvaluationConfig(min_improvement=0.02))
    assert d.outcome == HELD and "min_improvement 0.02" in d.reasons[0]
    assert gate(_summary(0.0, {"clean": 0.0}), EvaluationConfig()).outcome == HELD


def test_blocked_on_evidence_of_an_overall_regression() -> None:
    d = gate(_summary(-0.1, {"clean": -0.1}), EvaluationConfig())
    assert d.outcome == BLOCKED and "regression" in d.reasons[0] and "below 0" in d.reasons[0]


def test_a_slice_regression_blocks_and_names_the_slice() -> None:
    cfg = EvaluationConfig(slice_tolerance=0.02)
    d = gate(_summary(0.05, {"clean": 0.1, "decline": -0.05}), cfg)
    assert d.outcome == BLOCKED and len([r for r in d.reasons if "slice" in r]) == 1 and "'decline'" in d.reasons[0]
    within = gate(_summary(0.05, {"clean": 0.1, "decline": -0.015}), cfg)
    assert within.outcome == PROMOTED


def test_a_slice_drop_inside_its_noise_holds_and_says_it_is_too_small() -> None:
    d = gate(_summary(0.05, {"clean": 0.1, "small": -0.05}, slice_half=0.1), EvaluationConfig(slice_tolerance=0.02))
    assert d.outcome == HELD and any("'small'" in r and "too few items to judge" in r for r in d.reasons)
    assert "small" in d.underpowered and any("under-powered slice 'small'" in r for r in d.reasons)


def test_first_model_is_judged_against_the_base_model() -> None:
    d = gate(_summary(-0.1, {"clean": -0.1}, champion_is_base=True), EvaluationConfig())
    assert d.outcome == BLOCKED and "base model tiny" in d.reasons[0]
    assert gate(_summary(0.2, {"clean": 0.2}, champion_is_base=True), EvaluationConfig()).outcome == PROMOTED


def test_an_eval_leak_blocks() -> None:
    s = _summary(0.2, {"clean": 0.2})
    d = gate(s, EvaluationConfig(), leaks=[{"example_id": "abc", "input": "clean q0"}])
    assert d.outcome == BLOCKED and "1 eval item(s) appear in the candidate's training data" in d.reasons[0]
    d = gate(s, EvaluationConfig(), leak_problem="train.parquet not found")
    assert d.outcome == BLOCKED and "train.parquet not found" in d.reasons[0]


def test_an_evaluation_on_another_eval_set_than_the_frozen_one_is_blocked() -> None:
    s = _summary(0.2, {"clean": 0.2})
    assert gate(s, EvaluationConfig(), frozen_hash="h1").outcome == PROMOTED
    d = gate(s, EvaluationConfig(), frozen_hash="h0")
    assert d.outcome == BLOCKED and "not the frozen h0" in d.reasons[0]


def test_seed_spread_widens_the_interval_the_gate_uses() -> None:
    narrow = _summary(0.05, {"clean": 0.05}, half=0.02, slice_half=0.02)
    assert gate(narrow, EvaluationConfig()).outcome == PROMOTED
    noisy = {**narrow, "seed_spread": {"overall": 0.03, "slices": {"clean": 0.03}, "runs": 3}}
    d = gate(noisy, EvaluationConfig())
    assert d.outcome == HELD and d.overall is not None and d.overall.seed_sd == 0.03
    assert d.overall.low == pytest.approx(0.05 - math.hypot(0.02, 1.959964 * 0.03))
    assert any("training-seed spread" in r for r in d.reasons)


def test_widened_without_seed_noise_is_the_bootstrap_interval() -> None:
    iv = widened({"diff": 0.1, "ci_low": 0.05, "ci_high": 0.12, "n": 50})
    assert (iv.low, iv.high) == pytest.approx((0.05, 0.12))
    assert iv.mde == pytest.approx((1.959964 + 0.841621) * 0.07 / (2 * 1.959964))


def test_minimum_detectable_difference_of_an_eval_set() -> None:
    scores = [0.0, 1.0] * 50
    sd = math.sqrt(sum((x - 0.5) ** 2 for x in scores) / 99)
    assert minimum_detectable_difference(scores) == pytest.approx(2.801585 * math.sqrt(2) * sd / 10)
    assert minimum_detectable_difference([1.0]) == math.inf
