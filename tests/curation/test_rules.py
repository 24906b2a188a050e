"""The dataset's quality rules; here the blocking `format_consistent` and the answer format."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import EvalItems
from flywheel.curation.pipeline import curate
from flywheel.curation.rules import admission_rule, format_rule
from flywheel.curation.steps.format import FormatStep
from tests.curation.examples import ex


def _rows() -> list[dict]:
    tickets = ["my order never arrived", "how do I change my password", "the invoice shows the wrong address",
               "cancel the annual plan please", "app crashes when I open settings", "where is the nearest store"]
    good = [ex(f"Label this ticket: {t}", f'{{"label": "case {i}"}}') for i, t in enumerate(tickets)]
    return [*good, ex("Label this ticket: refund for a broken phone", 'Sure! {"label": "x"} hope that helps')]


def test_format_consistent_reports_the_answer_format_drops() -> None:
    cfg = CurationConfig(answer_regex=r"\{.*\}", min_examples=1, target_examples=1)
    result = curate(_rows(), cfg, EvalItems([]))
    assert len(result.rows) == 6 and [d["reason"] for d in result.drops] == ["answer_format"]
    rule = format_rule(result)
    assert rule.blocking and rule.passed
    assert rule.message == ("all 6 rows canonical ChatML; every answer complies with answer_regex '\\\\{.*\\\\}' "
                            "(1 rows breaking it dropped)")


def test_format_consistent_fails_when_a_final_row_breaks_the_answer_format() -> None:
    """Without the rubric step (a custom pipeline) a wrong-format row reaches the end: the blocking rule fails."""
    cfg = CurationConfig(answer_regex=r"\{.*\}", min_examples=1, target_examples=1)
    result = curate(_rows(), cfg, EvalItems([]), steps=[FormatStep()])
    rule = format_rule(result)
    assert rule.blocking and not rule.passed
    assert rule.message.startswith("1 rows break the answer format (answer_regex '\\\\{.*\\\\}'; e.g. [")


def test_format_consistent_without_an_answer_format() -> None:
    result = curate(_rows(), CurationConfig(min_examples=1, target_examples=1), EvalItems([]))
    rule = format_rule(result)
    assert rule.passed and rule.message == "all 7 rows canonical ChatML"


def test_sources_admitted_fails_when_admission_was_not_checked() -> None:
    """`curate` without the build's admission inputs keeps synthetic rows, and the blocking rule refuses them."""
    cfg = CurationConfig(min_examples=1, target_examples=1)
    rows = _rows()[:3] + [ex("Label this ticket: where is my parcel", '{"label": "x"}', "synthetic", generator="g")]
    result = curate(rows, cfg, EvalItems([]))
    rule = admission_rule(result)
    assert rule.blocking and not rule.passed
    assert rule.message == "1 synthetic or distilled rows and their files' admission was not checked"
    assert admission_rule(curate(_rows()[:3], cfg, EvalItems([]))).passed
