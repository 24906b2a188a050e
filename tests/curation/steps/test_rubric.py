"""Step 2, rubric: the answer format drops; of the proxy rules, one flags and two drop."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import CurationContext
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.rubric import RubricStep
from tests.curation.examples import ex


def test_rubric_one_rule_flags_two_rules_drop() -> None:
    cfg = CurationConfig(answer_max_chars=60, answer_regex=r"[A-Z].*")  # every answer here starts upper-case
    ok = ex("What is 2+2?", "Four.")
    one = ex("Tell me a joke", "I'm sorry, but I can't tell jokes.")  # refusal only
    two = ex("Explain tides", "I'm sorry, but I cannot explain that because the moon and the sun and the rest")  # refusal + length + truncated
    ctx = CurationContext(cfg)
    rows, (report,) = run_steps([ok, one, two], ctx, [RubricStep()])
    assert [r["example_id"] for r in rows] == [ok["example_id"], one["example_id"]]
    assert ctx.flagged[0]["rule"] == "refusal"
    (drop,) = ctx.drops
    assert set(drop["reason"].split("+")) >= {"refusal", "length_out_of_range"}
    assert report.flagged == {"refusal": 1}


def test_rubric_json_schema_and_refusal_allowed() -> None:
    schema = {"type": "object", "required": ["intent"], "properties": {"intent": {"type": "string"}}}
    cfg = CurationConfig(answer_json_schema=schema, answer_regex=r"\{.*", refusal_is_allowed=True)
    good = ex("cancel my order", '{"intent": "cancel"}')
    bad = ex("cancel my order pls", "Sure, cancelling now.")
    refusal = ex("x", '{"intent": "I\'m sorry, but I can\'t"}')
    ctx = CurationContext(cfg)
    rows, _ = run_steps([good, bad, refusal], ctx, [RubricStep()])
    assert {r["example_id"] for r in rows} == {good["example_id"], refusal["example_id"]}
    (drop,) = ctx.drops
    assert drop["reason"] == "answer_format"  # regex and schema are one rule: the answer format
    assert "answer_regex '\\\\{.*'" in drop["detail"] and "not JSON" in drop["detail"]


def test_rubric_truncated_and_style_outlier() -> None:
    rows = [ex(f"question {i}", "Short answer" + " and more" * (i % 6) + ".") for i in range(30)]
    rows.append(ex("question x", " ".join(f"Sentence {i} of a long answer adds detail number {i * 7}." for i in range(40))))
    rows.append(ex("question y", "This answer stops in the middle of a long sentence without"))
    rows.append(ex("question z", "Use `f(x` like this (see docs."))
    ctx = CurationContext(CurationConfig())
    run_steps(rows, ctx, [RubricStep()])
    flagged = {f["example_id"]: f["rule"] for f in ctx.flagged}
    assert flagged[rows[30]["example_id"]] == "style_outlier"
    assert flagged[rows[31]["example_id"]] == "truncated"
    assert flagged[rows[32]["example_id"]] == "truncated"
    assert len(flagged) == 3


def test_an_answer_breaking_the_format_is_dropped_even_when_no_other_rule_fails() -> None:
    """A format break is not a proxy vote: one is enough to drop, and the detail names the regex."""
    cfg = CurationConfig(answer_regex=r"\{.*\}")
    chatty = ex("Give me the JSON", 'Sure! {"x": 1} hope that helps')
    exact = ex("Give me the JSON too", '{"x": 1}')
    padded = ex("And once more", '  {"x": 2}\n')  # surrounding whitespace is not part of the answer
    ctx = CurationContext(cfg)
    rows, (report,) = run_steps([chatty, exact, padded], ctx, [RubricStep()])
    assert [r["example_id"] for r in rows] == [exact["example_id"], padded["example_id"]]
    (drop,) = ctx.drops
    assert drop["example_id"] == chatty["example_id"] and drop["step"] == "rubric"
    assert drop["reason"] == "answer_format" and "answer_regex '\\\\{.*\\\\}'" in drop["detail"]
    assert report.dropped == {"answer_format": 1} and ctx.flagged == []
