"""Training-seed noise: one evaluation's spread from its replicates, pooled over evaluations."""

from __future__ import annotations

import math

import pytest

from flywheel.evaluation.seed_spread import pooled_spread, spread_of


def _run(version: str, overall: float, clean: float) -> dict:
    return {"version": version, "overall": overall, "slices": {"clean": clean, "messy": overall}}


def test_spread_of_a_candidate_and_its_replicates() -> None:
    own = spread_of(_run("m", 0.10, 0.2), [_run("r1", 0.06, 0.1), _run("r2", 0.08, 0.3)])
    assert own["runs"] == 3 and own["df"] == 2 and own["replicates"] == ["r1", "r2"]
    assert own["var"] == pytest.approx(0.0004)  # values 0.10, 0.06, 0.08: sd 0.02
    assert own["slices"]["clean"]["var"] == pytest.approx(0.01)


def test_pooling_weights_each_evaluation_by_its_degrees_of_freedom() -> None:
    own = spread_of(_run("m", 0.10, 0.2), [_run("r1", 0.06, 0.1)])  # var 0.0008, df 1
    earlier = [{"var": 0.0002, "df": 3, "slices": {"clean": {"var": 0.0, "df": 0}}}, {"var": 9.0, "df": 0}]
    pooled = pooled_spread(own, earlier)
    assert pooled["df"] == 4 and pooled["evaluations"] == 2
    assert pooled["overall"] == pytest.approx(math.sqrt((0.0008 + 0.0006) / 4))
    assert pooled["slices"]["clean"] == pytest.approx(math.sqrt(0.005))  # only this evaluation measured it
    assert pooled["own_sd"] == pytest.approx(math.sqrt(0.0008))


def test_no_replicates_no_spread() -> None:
    assert pooled_spread(spread_of(_run("m", 0.1, 0.1), []), []) == {}
