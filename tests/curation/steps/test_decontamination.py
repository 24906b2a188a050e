"""Step 5, decontamination: no shared n-gram or near-duplicate input with the fixed eval set."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import CurationContext, EvalItems
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.decontamination import DecontaminationStep
from tests.curation.examples import ex


def test_decontamination_ngram_and_near_duplicate_input() -> None:
    eval_rows = [ex("Summarize: the quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree",
                    "A fox jumps over a dog."),
                 ex("What are the opening hours of the Berlin store on public holidays?", "10:00 to 16:00.")]
    leak = ex("Tell me a story.", "Once, the quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree.")
    near = ex("what are the opening hours of the berlin store on public holidays", "Closed.")
    clean = ex("How do I export my data?", "Settings > Data > Export.")
    ctx = CurationContext(CurationConfig(), eval_items=EvalItems(eval_rows))
    kept, _ = run_steps([leak, near, clean], ctx, [DecontaminationStep()])
    assert [r["example_id"] for r in kept] == [clean["example_id"]]
    assert {d["reason"] for d in ctx.drops} == {"eval_ngram_overlap", "eval_near_duplicate_input"}


def test_a_canned_answer_shared_with_an_eval_item_is_not_contamination() -> None:
    canned = "To reset your password open Settings then Security then Reset password and follow the emailed link."
    eval_rows = [ex("pwd reset pls", canned)]
    other_question = ex("I forgot my password, what now?", canned)
    ctx = CurationContext(CurationConfig(), eval_items=EvalItems(eval_rows))
    kept, _ = run_steps([other_question], ctx, [DecontaminationStep()])
    assert kept == [other_question] and ctx.drops == []


def test_decontamination_without_eval_set_records_it() -> None:
    ctx = CurationContext(CurationConfig(), eval_items=EvalItems(None, "/x/current.parquet"))
    kept, _ = run_steps([ex("a", "b.")], ctx, [DecontaminationStep()])
    assert len(kept) == 1 and ctx.facts["eval_set_missing"] == "/x/current.parquet"
