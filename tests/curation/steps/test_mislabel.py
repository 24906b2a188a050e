"""Step 4b, mislabels: inputs paired with another answer class's answer (the demo's shuffled generator)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flywheel.config import CurationConfig
from flywheel.core.records import make_example
from flywheel.curation.context import CurationContext
from flywheel.curation.near_duplicates import MinHasher
from flywheel.curation.pipeline import run_steps
from flywheel.curation.sources import load_source_examples
from flywheel.curation.steps import mislabel
from flywheel.curation.steps.mislabel import ANSWER_PREFIX, RULE, MislabelStep, answer_classes
from flywheel.demo.scenario import ANSWERS, CLEAN_OPENERS, CORES, FULL, GENERATOR_BROKEN, build_files
from tests.curation.examples import ex


def demo_rows() -> tuple[list[dict[str, Any]], set[str]]:
    """The demo's seed, two synthetic generators and the broken generator (answers rotated to another
    intent) as curation rows, and the broken rows' ids (the planted mislabels)."""
    files = build_files(FULL)
    rows = [make_example(r["messages"], "human") for r in files.seed]
    for part in (files.synthetic_a, files.synthetic_b, files.broken):
        rows += [make_example(r["messages"], "synthetic", generator=r["generator"]) for r in part]
    return rows, {r["example_id"] for r in rows if r["generator"] == GENERATOR_BROKEN}


def run(rows: list[dict[str, Any]], **cfg: Any) -> tuple[list[dict[str, Any]], CurationContext]:
    ctx = CurationContext(CurationConfig(**cfg))
    kept, _ = run_steps(list(rows), ctx, [MislabelStep()])
    return kept, ctx


def test_finds_the_shuffled_generator_on_the_demo_rows() -> None:
    rows, broken = demo_rows()
    kept, ctx = run(rows, mislabel_action="flag")
    found = {f["example_id"] for f in ctx.flagged}
    legit = len(rows) - len(broken)
    assert len(found & broken) / len(broken) >= 0.9  # recall: 98/104 measured
    assert len(found - broken) <= 0.02 * legit  # false positives: 0/252 measured
    facts = ctx.facts["mislabel"]
    assert facts["by_generator"][GENERATOR_BROKEN] == {"checked": len(broken), "found": len(found & broken)}
    assert facts["by_source"]["human"]["checked"] == len([r for r in rows if r["source"] == "human"])
    assert GENERATOR_BROKEN in ctx.warnings[0]


def test_drop_conserves_rows_and_names_the_predicted_class() -> None:
    rows, broken = demo_rows()
    kept, ctx = run(rows)
    assert len(rows) == len(kept) + len(ctx.drops) and not ctx.flagged
    assert {d["reason"] for d in ctx.drops} == {RULE} and {d["step"] for d in ctx.drops} == {"mislabel"}
    by_id = {r["example_id"]: r for r in rows}
    for d in ctx.drops:
        own = by_id[d["example_id"]]["messages"][-1]["content"]
        predicted = d["detail"].split("not like its own")[0]
        assert "reads like answer class" in d["detail"] and own[:40] not in predicted
        assert any(a[:40] in predicted for a in ANSWERS.values())


def test_flag_and_drop_find_the_same_rows() -> None:
    rows, _ = demo_rows()
    kept_flag, flag_ctx = run(rows, mislabel_action="flag")
    kept_drop, drop_ctx = run(rows, mislabel_action="drop")
    assert len(kept_flag) == len(rows) and not flag_ctx.drops
    assert {f["example_id"] for f in flag_ctx.flagged} == {d["example_id"] for d in drop_ctx.drops}
    assert {f["rule"] for f in flag_ctx.flagged} == {RULE}


def test_deterministic_and_independent_of_row_order() -> None:
    rows, _ = demo_rows()
    _, a = run(rows)
    _, b = run(rows)
    assert a.drops == b.drops and a.facts == b.facts
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    _, c = run(shuffled)
    assert {d["example_id"]: d["detail"] for d in c.drops} == {d["example_id"]: d["detail"] for d in a.drops}


def test_rows_of_small_classes_are_left_alone() -> None:
    rows, _ = demo_rows()
    clean = [r for r in rows if r["generator"] != GENERATOR_BROKEN]
    # one question of each intent given the same odd answer: a class of 10 rows, none of them right
    odd_answer = "Call us on 555-0100 between nine and five."
    odd = [ex(CLEAN_OPENERS[i % len(CLEAN_OPENERS)].format(c=cores[-1]), odd_answer, "synthetic",
              generator="g-odd") for i, cores in enumerate(CORES.values())]
    assert len(odd) == 10
    _, ctx = run(clean + odd, mislabel_min_class_examples=11)
    assert not ctx.drops and ctx.facts["mislabel"]["rows_in_small_classes"] == 10
    # at 10 the class takes part: its rows are found, and its near-0 threshold claims no other row
    _, ctx = run(clean + odd, mislabel_min_class_examples=10)
    found = {d["example_id"] for d in ctx.drops}
    assert found <= {r["example_id"] for r in odd} and len(found) >= 8


def test_skipped_without_two_classes() -> None:
    rng = random.Random(0)
    words = "open close settings billing account plan email link export notes sync share code team".split()
    rows = [ex(f"question number {i} about billing", " ".join(rng.choices(words, k=12)) + ".")
            for i in range(30)]
    kept, ctx = run(rows)
    assert kept == rows and not ctx.drops
    assert ctx.facts["mislabel"]["classes_checked"] == 0 and "skipped" in ctx.facts["mislabel"]


def test_human_fixed_rows_are_never_found() -> None:
    rows, broken = demo_rows()
    fixed = [dict(r, human_fixed=True) if r["example_id"] in broken else r for r in rows]
    _, ctx = run(fixed)
    assert not {d["example_id"] for d in ctx.drops} & broken  # no row a person fixed is ever found
    assert len(ctx.drops) <= 0.02 * len(rows)


def test_answer_classes_join_near_duplicate_answers_without_chaining() -> None:
    base = "Go to Settings > Security > Reset password. We email you a link within five minutes."
    near = "Go to Settings > Security > Reset password. We email you a link within five minutes!!"
    other = "Go to Settings > Billing > Cancel plan. Access lasts until the end of the period."
    labels = answer_classes([base, base, near, base.upper(), other], 0.8, MinHasher(seed=3))
    assert labels.tolist() == [0, 0, 0, 0, 1]
    # a chain a ~ b ~ c where a and c are not near: c does not join a's class through b
    words = [f"w{i:02d}" for i in range(30)]
    a, b, c = (" ".join(words[s:s + 20]) for s in (0, 2, 4))
    chain = answer_classes([a, a, b, c], 0.75, MinHasher(num_perm=256, seed=3))
    assert chain[0] == chain[1] == chain[2] and chain[3] != chain[0]
    # answers signed on their first ANSWER_PREFIX characters are still compared whole
    opening = "Thank you for contacting Nimbus Notes support, we are happy to help with your account. " * 3
    assert len(opening) > ANSWER_PREFIX
    endings = ["Go to Settings > Security > Reset password and follow the link we email you.",
               "Refunds are possible within fourteen days: write to billing and quote your order number."]
    labels = answer_classes([opening + endings[0], opening + endings[1]], 0.8, MinHasher(seed=3))
    assert labels[0] != labels[1]


def test_real_files_have_no_answer_classes(shared_datasets: Path) -> None:
    """Free-text answers (Alpaca, ShareGPT) are classes of one: nothing is checked, nothing is found."""
    for name in ("alpaca_llamafactory_demo.json", "sharegpt_fastchat_dummy.json"):
        rows = load_source_examples([shared_datasets / name], "human").examples
        kept, ctx = run(rows)
        assert len(kept) == len(rows) and ctx.facts["mislabel"]["found"] == 0


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n: int) -> None:
    rows = [ex("hi", "hello")] * n
    kept, ctx = run(rows)
    assert kept == rows and ctx.facts["mislabel"]["rows_checked"] == 0
    assert ctx.facts["mislabel"]["answer_classes"] == n


def test_classes_answering_the_same_questions_are_one_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replies used interchangeably for the same questions (like ShareGPT's identity answers)."""
    rows, _ = demo_rows()
    clean = [r for r in rows if r["generator"] != GENERATOR_BROKEN]
    alt = "Open Settings, choose Security, then Reset password: a link arrives by email."
    reset = [r for r in clean if r["messages"][-1]["content"] == ANSWERS["reset_password"]]
    twins = [make_example([r["messages"][0], {"role": "assistant", "content": alt}], "synthetic",
                          generator="g-alt") for r in reset]
    # the same questions answered both ways; distinct questions answered one way or the other at random
    halves = [r for r in clean if r not in reset[1::2]] + twins[1::2]
    for data in (clean + twins, halves):
        _, ctx = run(data)
        assert not ctx.drops and ctx.facts["mislabel"]["classes_merged"] == 1
    # without the merge, the questions split at random read like the other half's class
    monkeypatch.setattr(mislabel, "same_input_classes", lambda x, labels, k, sim: np.arange(k))
    _, ctx = run(halves)
    assert ctx.drops


def test_same_input_similarity_joins_halves_of_a_class_not_two_intents() -> None:
    """Halves (12 rows each) of one demo intent score 0.7-1.1; two intents stay below 0.7."""
    rows, _ = demo_rows()
    clean = [r for r in rows if r["generator"] != GENERATOR_BROKEN  # out of scope: diffuse, its halves differ
             and r["messages"][-1]["content"] != ANSWERS["out_of_scope"]]
    x = mislabel.input_features([r["messages"][0]["content"] for r in clean])
    _, labels = np.unique([r["messages"][-1]["content"] for r in clean], return_inverse=True)
    split = labels * 2 + (np.arange(len(labels)) % 2)  # each intent cut in two halves
    groups = mislabel.same_input_classes(x, split, int(split.max()) + 1, 0.7)
    assert (groups[0::2] == groups[1::2]).all() and len(np.unique(groups)) == labels.max() + 1


def many_classes(n: int = 1000, intents: int = 50, noise: float = 0.05,
                 seed: int = 0) -> tuple[list[dict[str, Any]], set[str]]:
    """`n` rows of `intents` verb+topic requests, one canned answer each; `noise` of them get another's."""
    rng = random.Random(seed)
    verbs = "reset change cancel track update find fix open close renew pay download install connect".split()
    topics = ("account billing password refund order shipping invoice login email phone plan upgrade "
              "delivery subscription address payment card coupon return warranty battery screen").split()
    words = "open the settings page choose option confirm code email minutes spam folder support".split()
    pairs = rng.sample([(v, t) for v in verbs for t in topics], intents)
    answers = [" ".join(rng.choice(words) for _ in range(14)) + f" (ref {i})." for i in range(intents)]
    templates = ["how do i {c}", "can you help me {c}", "i want to {c}", "{c} please", "steps to {c}"]
    rows, wrong = [], set()
    for _ in range(n):
        k = rng.randrange(intents)
        text = rng.choice(templates).format(c=f"{pairs[k][0]} my {pairs[k][1]}") + f" #{rng.randrange(10**6)}"
        bad = rng.random() < noise
        answer = answers[(k + 1 + rng.randrange(intents - 1)) % intents] if bad else answers[k]
        row = ex(text, answer, "synthetic", generator="g")
        rows.append(row)
        if bad:
            wrong.add(row["example_id"])
    return rows, wrong


def test_many_classes_need_less_than_the_full_threshold() -> None:
    """With 50 classes the softmax spreads: a wrong row typical of its predicted class sits near that
    class's mean, so the final fit asks `mislabel_confidence` (0.75) of the threshold; the full one misses."""
    rows, wrong = many_classes()
    _, ctx = run(rows)
    found = {d["example_id"] for d in ctx.drops}
    assert found == wrong
    _, ctx = run(rows, mislabel_confidence=1.0)
    assert len({d["example_id"] for d in ctx.drops} & wrong) < 0.9 * len(wrong)
