"""Messy inputs: styles planned in production's proportions, rewrites that give an input its traits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.capture.profile import build_vocabulary, input_kinds
from flywheel.generation.messy import STYLE_KINDS, apply_style, describe_style, plan_styles

VOCAB = build_vocabulary(["Could you please help me update the information on my account before Friday?"])
CLEAN = "Could you please help me update the information on my account before Friday?"


def test_plan_styles_hits_the_shares_exactly() -> None:
    styles = plan_styles(20, {"lower_case": 0.5, "typo_laden": 0.26, "short": 0.0, "question": 0.9}, seed=1)
    assert sum("lower_case" in s for s in styles) == 10 and sum("typo_laden" in s for s in styles) == 5
    assert not any("short" in s for s in styles) and all(set(s) <= set(STYLE_KINDS) for s in styles)
    assert styles == plan_styles(20, {"lower_case": 0.5, "typo_laden": 0.26}, seed=1)  # seeded
    assert describe_style(()) == "as a careful writer would" and "lower-case" in describe_style(("lower_case",))


def test_apply_style_gives_each_trait() -> None:
    assert not any(input_kinds(CLEAN, VOCAB)[k] for k in ("lower_case", "typo_laden", "abbreviation_heavy"))
    for kind in ("lower_case", "typo_laden", "abbreviation_heavy", "no_punctuation"):
        messy = apply_style(CLEAN, (kind,), VOCAB, seed=3)
        assert input_kinds(messy, VOCAB)[kind], (kind, messy)
    both = apply_style(CLEAN, ("lower_case", "abbreviation_heavy", "no_punctuation"), VOCAB, seed=3)
    assert both == "could u pls help me update the info on my acct b4 friday"
    assert apply_style(CLEAN, (), VOCAB, seed=3) == CLEAN


@settings(max_examples=60)
@given(st.text(max_size=120), st.sets(st.sampled_from(STYLE_KINDS)))
def test_apply_style_never_crashes(text: str, kinds: set[str]) -> None:
    assert isinstance(apply_style(text, tuple(kinds), VOCAB, seed=0), str)
