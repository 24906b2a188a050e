"""flywheel.labeling.candidates: the week's interactions with their signals, and the input key."""

from __future__ import annotations

import pytest

from flywheel.core.storage import FlywheelHome
from flywheel.core.text import input_match_key
from flywheel.labeling.candidates import input_key, load_week_candidates
from tests.labeling.traffic import WEEK, traffic, write_week


def test_week_candidates_read_with_duckdb(home: FlywheelHome) -> None:
    write_week(home, traffic())
    rows, counts = load_week_candidates(home, WEEK)
    assert counts["interactions"] == 73 and counts["days_with_interactions"] == 7
    assert {r["signal"] for r in rows} == {"correction", "negative", "positive", "none"}
    assert rows == sorted(rows, key=lambda r: r["ts"])
    with pytest.raises(ValueError, match="not a Monday"):
        load_week_candidates(home, "2026-11-17")


def test_input_key_is_the_input_match_key_of_every_user_turn() -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ｅｘｐｏｒｔ  to CSV??"},
            {"role": "assistant", "content": "Reports > Export."}, {"role": "user", "content": "And PDF?"}]
    assert input_key(msgs) == input_match_key("Ｅｘｐｏｒｔ  to CSV??\nAnd PDF?") == "export to csv and pdf"
    assert input_key([{"role": "system", "content": "x"}], fallback="Straße!") == "strasse"
    assert input_key(None) == ""
