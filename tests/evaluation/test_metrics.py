"""Answer metrics (0-1 scale), the answer format score and the paired bootstrap."""

from __future__ import annotations

import math

import pytest

from flywheel.core.text import answer_match_form
from flywheel.curation.answer_format import AnswerFormat
from flywheel.evaluation.metrics import chrf, exact_match, paired_bootstrap, token_f1


def test_answer_match_form_drops_case_punctuation_articles_and_spaces() -> None:
    assert answer_match_form("  The  Answer, is: PARIS!  ") == "answer is paris"
    assert answer_match_form("ＰＡＲＩＳ") == "paris"  # NFKC full-width


def test_exact_match_is_normalized() -> None:
    assert exact_match("Paris.", "paris") == 1.0
    assert exact_match("the cat", "A cat!") == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0


def test_token_f1() -> None:
    assert token_f1("red green blue", "red green blue") == 1.0
    assert token_f1("red", "yellow") == 0.0
    # precision 1/2, recall 1/1 -> 2/3
    assert token_f1("red car", "red") == pytest.approx(2 / 3)
    # repeated tokens count only as often as in the reference
    assert token_f1("red red", "red") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0
    assert token_f1("", "red") == 0.0


def test_chrf_is_sacrebleu_scaled_to_one() -> None:
    from sacrebleu.metrics import CHRF

    assert chrf("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert chrf("xyz", "the cat sat on the mat") == pytest.approx(0.0, abs=0.02)
    partial = chrf("the cat sat", "the cat sat on the mat")
    assert 0.2 < partial < 0.9
    assert partial == pytest.approx(CHRF().sentence_score("the cat sat", ["the cat sat on the mat"]).score / 100)


def test_answer_format_regex_and_json_schema() -> None:
    assert AnswerFormat().score("anything") == 1.0
    rule = AnswerFormat(regex=r"\{.*\}")
    assert rule.score('{"a": 1}') == 1.0
    assert rule.score("no json here") == 0.0
    schema = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["yes", "no"]}}}
    js = AnswerFormat(json_schema=schema)
    assert js.score('{"label": "yes"}') == 1.0
    assert js.score('{"label": "maybe"}') == 0.0
    assert js.score("not json") == 0.0
    with pytest.raises(Exception, match="unterminated|missing|error"):
        AnswerFormat(regex="(unclosed")


def test_paired_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    cand = [1.0, 0.8, 0.9, 0.7, 1.0, 0.6, 0.9, 0.8] * 5
    champ = [0.5, 0.6, 0.4, 0.7, 0.5, 0.6, 0.3, 0.5] * 5
    a = paired_bootstrap(cand, champ, samples=500, seed=3)
    b = paired_bootstrap(cand, champ, samples=500, seed=3)
    assert a == b
    assert a.diff == pytest.approx(sum(cand) / len(cand) - sum(champ) / len(champ))
    assert a.ci_low <= a.diff <= a.ci_high
    assert a.ci_low > 0  # consistently better
    assert a.n == 40


def test_paired_bootstrap_identical_models_has_zero_width_interval() -> None:
    scores = [0.1, 0.5, 0.9, 0.3]
    r = paired_bootstrap(scores, scores, samples=200)
    assert r.diff == r.ci_low == r.ci_high == 0.0


def test_paired_bootstrap_noisy_difference_straddles_zero() -> None:
    cand = [1.0, 0.0] * 10
    champ = [0.0, 1.0] * 10
    r = paired_bootstrap(cand, champ, samples=1000, seed=0)
    assert r.diff == 0.0
    assert r.ci_low < 0 < r.ci_high


def test_paired_bootstrap_skips_nan_pairs_and_checks_lengths() -> None:
    r = paired_bootstrap([1.0, math.nan, 0.5], [0.0, 0.2, math.nan], samples=100)
    assert r.n == 1 and r.diff == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap([1.0], [1.0, 0.0])
