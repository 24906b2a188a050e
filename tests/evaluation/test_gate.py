"""The gate: improvement beyond min_improvement, slice tolerance, the first model against the base,
and the refusal of eval items in the candidate's training data."""

from __future__ import annotations

from pathlib import Path

from flywheel.config import EvaluationConfig
from flywheel.core.records import examples_table, make_example
from flywheel.evaluation.eval_set import load_eval_set
from flywheel.evaluation.gate import gate, leaked_eval_items
from tests.evaluation.eval_files import eval_rows, write_eval_file


def test_find_eval_leaks_matches_normalized_inputs(tmp_path: Path) -> None:
    table = load_eval_set(write_eval_file(tmp_path / "e.jsonl", eval_rows(10))).table
    train = examples_table([make_example([{"role": "user", "content": "  CLEAN   q0 "},
                                          {"role": "assistant", "content": "other"}], "real"),
                            make_example([{"role": "user", "content": "clean q0 extra"},
                                          {"role": "assistant", "content": "x"}], "real")])
    leaks = leaked_eval_items(table, train)
    assert [x["input"] for x in leaks] == ["clean q0"]


def _summary(overall: float, slices: dict[str, float], champion_is_base: bool = False, champ: float = 0.5) -> dict:
    def block(d: float) -> dict:
        return {"chrf": {"candidate": champ + d, "champion": champ, "diff": d, "ci_low": d - 0.01, "ci_high": d + 0.01}}

    return {"candidate": "v2", "champion": "base:tiny" if champion_is_base else "v1", "champion_is_base": champion_is_base,
            "base_model": "tiny", "dataset_version": "ds", "overall": block(overall),
            "slices": {s: {"n": 20, "metrics": block(d)} for s, d in slices.items()}}


def test_gate_passes_a_clear_improvement() -> None:
    d = gate(_summary(0.05, {"clean": 0.06, "messy": 0.0}), EvaluationConfig(min_improvement=0.01))
    assert d.passed and "champion v1" in d.reasons[0]


def test_gate_requires_min_improvement_and_a_real_gain() -> None:
    cfg = EvaluationConfig(min_improvement=0.02)
    d = gate(_summary(0.01, {"clean": 0.01}), cfg)
    assert not d.passed and "not an improvement of at least 0.02" in d.reasons[0]
    tie = gate(_summary(0.0, {"clean": 0.0}), EvaluationConfig(min_improvement=0.0))
    assert not tie.passed


def test_gate_blocks_a_slice_regression_beyond_tolerance() -> None:
    cfg = EvaluationConfig(slice_tolerance=0.02)
    d = gate(_summary(0.05, {"clean": 0.1, "decline": -0.05}), cfg)
    assert not d.passed and len(d.reasons) == 1 and "slice 'decline'" in d.reasons[0]
    within = gate(_summary(0.05, {"clean": 0.1, "decline": -0.015}), cfg)
    assert within.passed


def test_gate_first_model_must_beat_base() -> None:
    d = gate(_summary(-0.1, {"clean": -0.1}, champion_is_base=True), EvaluationConfig())
    assert not d.passed and "base model tiny" in d.reasons[0]
    assert gate(_summary(0.2, {"clean": 0.2}, champion_is_base=True), EvaluationConfig()).passed


def test_gate_refuses_leaks_and_unchecked_training_data() -> None:
    s = _summary(0.2, {"clean": 0.2})
    d = gate(s, EvaluationConfig(), leaks=[{"example_id": "abc", "input": "clean q0"}])
    assert not d.passed and "1 eval item(s) appear in the candidate's training data" in d.reasons[0]
    d = gate(s, EvaluationConfig(), leak_problem="train.parquet not found")
    assert not d.passed and "train.parquet not found" in d.reasons[0]
    missing = gate(s, EvaluationConfig(primary_metric="judge"))
    assert not missing.passed and "not computed" in missing.reasons[0]
