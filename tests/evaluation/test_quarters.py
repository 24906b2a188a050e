"""Which quarter's candidate may become the champion, and the score per quarter."""

from __future__ import annotations

import pytest

from flywheel.core.errors import StateError
from flywheel.core.quarters import update_quarter
from flywheel.core.storage import FlywheelHome
from flywheel.evaluation.quarters import promotion_refusal, quarter_candidate, quarters_markdown


def test_only_the_newest_retrained_quarter_may_replace_the_champion(tmp_path) -> None:
    home = FlywheelHome(tmp_path)
    assert promotion_refusal(home, "2026-Q3") is None  # nothing retrained yet
    update_quarter(home, "2026-Q4", dataset_version="d4")
    update_quarter(home, "2026-Q3", dataset_version="d3")  # a backfill after the current quarter's retrain
    refusal = promotion_refusal(home, "2026-07-01")
    assert refusal is not None and "2026-Q3 is not the newest retrained quarter (2026-Q4)" in refusal
    assert promotion_refusal(home, "2026-10-01") is None
    assert promotion_refusal(home, "2027-01-01") is None  # a new quarter's first retrain


def test_score_per_quarter_and_a_quarter_without_a_model(tmp_path) -> None:
    home = FlywheelHome(tmp_path)
    assert quarters_markdown(home) == "no quarter retrained yet"
    update_quarter(home, "2026-Q3", dataset_version="d3", model_version="m3", outcome="promoted", score=0.53,
                   diff=0.52, interval=[0.47, 0.57])
    update_quarter(home, "2026-Q4", dataset_version="d4")
    table = quarters_markdown(home)
    assert "| 2026-Q3 | d3 | m3 | promoted | 0.530 | +0.520 | [+0.470, +0.570] |" in table
    assert "| 2026-Q4 | d4 | - | - | - | - | - |" in table
    with pytest.raises(StateError, match="2026-Q4: no model trained for this quarter"):
        quarter_candidate(home, "2026-10-01")
