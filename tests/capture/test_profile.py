"""The production-input profile: kinds, shares, under-covered kinds, the recent weeks of captured inputs."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from flywheel.capture.profile import (
    KINDS,
    build_vocabulary,
    input_kinds,
    kind_shares,
    production_profile,
    under_covered_kinds,
)
from flywheel.core.storage import FlywheelHome
from tests.generation.conftest import MESSY, write_interactions


def test_kinds_and_shares() -> None:
    vocab = build_vocabulary(["How do I change my password?"])
    assert input_kinds("pls chnage pwd", vocab) | {"question": False} == {
        "short": True, "lower_case": True, "typo_laden": True, "abbreviation_heavy": True, "no_punctuation": True,
        "question": False}
    text = "How do I change my password, please? I tried twice already today."
    clean = input_kinds(text, build_vocabulary([text]))
    assert clean["question"] is False and not clean["lower_case"] and not clean["typo_laden"] and not clean["short"]
    shares = kind_shares(["pls help", "How do I change my password?"], vocab)
    assert shares["lower_case"] == 0.5 and shares["question"] == 0.5 and set(shares) == set(KINDS)
    assert kind_shares([], vocab) == dict.fromkeys(KINDS, 0.0)


def test_under_covered_kinds() -> None:
    prod = {"short": 0.6, "lower_case": 0.5, "typo_laden": 0.02, "question": 0.3}
    assert under_covered_kinds(prod, {"short": 0.1, "lower_case": 0.3, "typo_laden": 0.0, "question": 0.1}) == [
        "short", "question"]  # typos too rare in production to count; lower-case covered (0.3 >= 0.25)


@given(st.text(max_size=200))
def test_input_kinds_total(text: str) -> None:
    assert set(input_kinds(text, set())) == set(KINDS)


def test_profile_of_recent_weeks_until(home: FlywheelHome) -> None:
    write_interactions(home, "2026-01-06", MESSY, model_version="v1")
    write_interactions(home, "2026-03-02", ["Later clean question?"], model_version="v2")
    everything = production_profile(home.warehouse("interactions"), weeks=20)
    assert len(everything.inputs) == 11 and everything.model_versions == {"v1", "v2"}
    until = production_profile(home.warehouse("interactions"), weeks=4, until=dt.date(2026, 1, 12))
    assert sorted(until.inputs) == sorted(MESSY) and until.model_versions == {"v1"}
    assert until.shares["lower_case"] >= 0.8 and until.median_words == 3.0 and until.available
    assert not production_profile(home.warehouse("interactions"), until=dt.date(2026, 1, 1)).available
