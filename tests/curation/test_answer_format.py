"""The answer format means one thing in curation and in evaluation: the stripped answer fully matches."""

from __future__ import annotations

import pytest

from flywheel.config import CurationConfig
from flywheel.core.errors import InputError
from flywheel.curation.answer_format import AnswerFormat
from flywheel.curation.context import CurationContext
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.rubric import RubricStep
from flywheel.evaluation.eval_set import EvalItem
from flywheel.evaluation.metrics import score_answers
from tests.curation.examples import ex

CHATTY = 'Sure! {"x": 1} hope that helps'
EXACT = '{"x": 1}'


def _curation_keeps(cfg: CurationConfig, answer: str) -> bool:
    rows, _ = run_steps([ex("Give me the JSON", answer)], CurationContext(cfg), [RubricStep()])
    return bool(rows)


def _evaluation_format_score(fmt: AnswerFormat, answer: str) -> float:
    item = EvalItem("e1", "clean", [{"role": "user", "content": "Give me the JSON"}], EXACT)
    return score_answers([item], [answer], ["format"], fmt)["format"][0]


def test_a_chatty_json_answer_is_rejected_by_curation_and_scores_zero_in_evaluation() -> None:
    cfg = CurationConfig(answer_regex=r"\{.*\}")
    fmt = AnswerFormat.from_config(cfg)
    assert fmt.problem(CHATTY) == r"does not fully match answer_regex '\\{.*\\}'"
    assert not _curation_keeps(cfg, CHATTY)
    assert _evaluation_format_score(fmt, CHATTY) == 0.0


def test_a_fully_matching_answer_passes_curation_and_evaluation() -> None:
    cfg = CurationConfig(answer_regex=r"\{.*\}")
    fmt = AnswerFormat.from_config(cfg)
    for answer in (EXACT, f"  {EXACT}\n", '{"x": {\n"y": 2}}'):  # stripped; DOTALL spans lines
        assert fmt.problem(answer) is None and fmt.score(answer) == 1.0
        assert _curation_keeps(cfg, answer)
        assert _evaluation_format_score(fmt, answer) == 1.0


def test_json_schema_and_unset_format() -> None:
    assert AnswerFormat().score("anything") == 1.0 and not AnswerFormat().configured
    assert AnswerFormat(regex="").problem("anything") is None  # an empty regex is unset
    schema = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["yes", "no"]}}}
    js = AnswerFormat(json_schema=schema)
    assert js.score('{"label": "yes"}') == 1.0
    assert js.problem('{"label": "maybe"}').startswith("answer_json_schema: 'maybe' is not one of")
    assert js.problem("not json").startswith("not JSON")
    both = AnswerFormat(regex=r"\{.*\}", json_schema=schema)
    assert both.describe() == r"answer_regex '\\{.*\\}' and answer_json_schema"
    assert len(both.problems("no")) == 2


def test_an_invalid_format_is_an_input_error() -> None:
    with pytest.raises(InputError, match="answer_regex '\\(unclosed' is not a valid regular expression: missing"):
        AnswerFormat(regex="(unclosed")
    with pytest.raises(InputError, match="answer_json_schema is not a valid JSON schema"):
        AnswerFormat(json_schema={"type": "no-such-type"})
