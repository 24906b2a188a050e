"""Step 5, decontamination: no shared n-gram, near-copy or near-duplicate input with the fixed eval set
(the near-copy rule on the demo's eval set, planted typo variants and its legitimate rows)."""

from __future__ import annotations

import pytest
from rapidfuzz.distance import OSA

from flywheel.config import CurationConfig
from flywheel.core.records import make_example
from flywheel.core.text import final_answer, input_match_key, last_user_text
from flywheel.curation.context import CurationContext, EvalItems
from flywheel.curation.near_duplicates import MinHasher
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.decontamination import (
    DecontaminationStep,
    contamination,
    edit_budget,
    eval_near_copies,
)
from tests.curation.eval_variants import demo_files, planted_rows, within_budget
from tests.curation.examples import ex


def test_decontamination_ngram_near_duplicate_and_near_copy_input() -> None:
    eval_rows = [ex("Summarize: the quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree",
                    "A fox jumps over a dog."),
                 ex("What are the opening hours of the Berlin store on public holidays?", "10:00 to 16:00.")]
    leak = ex("Tell me a story.", "Once, the quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree.")
    near = ex("What are the opening hours of the Berlin store on public holidays, please?", "Closed.")
    copy = ex("what are the opening hours of the berlin store on public holidays", "Closed.")
    clean = ex("How do I export my data?", "Settings > Data > Export.")
    ctx = CurationContext(CurationConfig(), eval_items=EvalItems(eval_rows))
    kept, _ = run_steps([leak, near, copy, clean], ctx, [DecontaminationStep()])
    assert [r["example_id"] for r in kept] == [clean["example_id"]]
    assert {d["example_id"]: d["reason"] for d in ctx.drops} == {
        leak["example_id"]: "eval_ngram_overlap", near["example_id"]: "eval_near_duplicate_input",
        copy["example_id"]: "eval_near_copy"}


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


# --- near-copies of short eval items ---------------------------------------------------------------
@pytest.fixture(scope="module")
def demo() -> tuple[list[dict], dict[str, list[dict]]]:
    """(the demo's eval rows with ids, {source: its legitimate training rows})."""
    files, traffic = demo_files()
    evals = [{**r, "example_id": f"eval-{i:03d}"} for i, r in enumerate(files.eval_set)]
    return evals, {"seed": files.seed, "synthetic_a": files.synthetic_a, "synthetic_b": files.synthetic_b,
                   "traffic": traffic}


def _found(rows: list[dict], eval_rows: list[dict], cfg: CurationConfig | None = None) -> dict[int, tuple[str, str]]:
    cfg = cfg or CurationConfig()
    return contamination(rows, eval_rows, cfg, MinHasher(cfg.minhash_permutations, cfg.seed + 1, cfg.shingle_chars))


@pytest.mark.parametrize("edits", [1, 2])
def test_every_demo_eval_item_copied_with_typos_is_dropped(demo: tuple, edits: int) -> None:
    # before the near-copy rule (13-gram window and MinHash Jaccard >= 0.8 only): 30/114 caught with one
    # edit, 3/114 with two; 3 edits: 0/114 then and now (benchmarks/decontamination.py)
    evals, _ = demo
    targets = within_budget(evals, edits)
    assert len(targets) >= 0.9 * len(evals)
    planted = [ex(last_user_text(r["messages"]), final_answer(r["messages"])) for r in planted_rows(targets, edits)]
    ctx = CurationContext(CurationConfig(), eval_items=EvalItems(evals))
    kept, _ = run_steps(planted, ctx, [DecontaminationStep()])
    assert [last_user_text(r["messages"]) for r in kept] == []
    near = [d for d in ctx.drops if d["reason"] == "eval_near_copy"]
    assert len(near) == len(planted) - sum(d["reason"] != "eval_near_copy" for d in ctx.drops)
    assert any(f"{edits} character edit(s) from eval item eval-" in d["detail"] for d in near)


def test_near_copy_rule_matches_a_brute_force_oracle_on_the_demo(demo: tuple) -> None:
    evals, legit = demo
    rows = [r for rs in legit.values() for r in rs] + planted_rows(evals, 1) + planted_rows(evals, 3)
    cfg = CurationConfig()
    eval_keys = [input_match_key(last_user_text(e["messages"])) for e in evals]
    expected = {}
    for i, r in enumerate(rows):
        key = input_match_key(last_user_text(r["messages"]))
        dist = [OSA.distance(key, k) if k and key else 99 for k in eval_keys]
        ok = [(d, j) for j, (d, k) in enumerate(zip(dist, eval_keys, strict=True)) if d <= edit_budget(k, cfg)]
        if ok:
            expected[i] = min(ok)
    got = {c.train_row: (c.edits, c.eval_row) for c in eval_near_copies([r["messages"] for r in rows],
                                                                        [e["messages"] for e in evals], cfg)}
    assert got == expected


def test_no_distinct_phrasing_of_the_demo_is_taken_for_a_copy(demo: tuple) -> None:
    """The demo's human seed and polite synthetic rows phrase the eval requests differently ("How can I" vs
    "How do I" is three edits): none is a near-copy. The terse generator and the production traffic do
    hold near-copies of eval inputs (`secure my account with two-factor - how` is one edit from the eval
    item `SECURE MY ACCOUNT WITH TWO-FACTOR!!! NOW`, `buy pro pllan` from `buy pro plan`): those are leaks."""
    evals, legit = demo
    eval_messages = [e["messages"] for e in evals]
    for source in ("seed", "synthetic_a"):
        assert eval_near_copies([r["messages"] for r in legit[source]], eval_messages) == [], source
    for source in ("synthetic_b", "traffic"):  # typo'd copies of eval requests: real leaks, a few percent
        copies = eval_near_copies([r["messages"] for r in legit[source]], eval_messages)
        assert all(c.edits <= 2 for c in copies) and len(copies) <= 0.1 * len(legit[source]), source
    eval_rows = [ex("How do I reset my password?", "a"), ex("data?", "b"), ex("2FA", "c")]
    kept = [ex(q, "x") for q in ("How can I reset my password?", "Hi, how do I reset my password?",
                                 "I want to reset my password.", "How do I reset my passcode?", "dark mode", "2FA app")]
    # (the MinHash rule, older than this one, does take "Hi, how do I ..." for a near-duplicate of it: 0.89)
    assert eval_near_copies([r["messages"] for r in kept], [e["messages"] for e in eval_rows]) == []
    copies = [ex(q, "x") for q in ("how do i reset my pasword", "HOW DO I RESET MY PASSWORD!!", "dta", "2fa?", "fa")]
    assert sorted(_found(copies, eval_rows)) == [0, 1, 2, 3, 4]


def test_near_copy_thresholds_come_from_the_config() -> None:
    eval_rows = [ex("How do I export my notes?", "a")]
    rows = [ex("how do i exprt my notes", "x"), ex("how do i export my notes", "y"), ex("hw do i exprt my notes", "z")]
    assert sorted(_found(rows, eval_rows)) == [0, 1, 2]
    assert sorted(_found(rows, eval_rows, CurationConfig(decontamination_max_edits=1))) == [0, 1]
    assert sorted(_found(rows, eval_rows, CurationConfig(decontamination_max_edits=0))) == [1]
    # any user turn of a conversation counts, not only the last
    multi = make_example([{"role": "user", "content": "how do i exprt my notes"}, {"role": "assistant", "content": "?"},
                          {"role": "user", "content": "thanks, and something else entirely"},
                          {"role": "assistant", "content": "ok"}], "real")
    assert sorted(_found([multi], eval_rows)) == [0]
