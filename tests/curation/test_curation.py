"""Curation: sources, each step, dataset versions; on the shared real files and small made-up rows."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from flywheel.config import CurationConfig
from flywheel.core.records import make_example
from flywheel.core.storage import FlywheelHome
from flywheel.curation.near_duplicates import MinHasher, exact_jaccard, near_duplicate_clusters
from flywheel.curation.pipeline import (
    BalanceStep,
    ConflictStep,
    CurationContext,
    DecontaminationStep,
    DedupStep,
    EvalItems,
    FormatStep,
    RubricStep,
    content_hash,
    curate,
    latest_version,
    load_source_examples,
    run_steps,
    write_dataset_version,
)
from tests.shared_data import DATASETS

ALPACA = DATASETS / "alpaca_llamafactory_demo.json"
SHAREGPT = DATASETS / "sharegpt_fastchat_dummy.json"
CHATML = DATASETS / "chatml_openai_toy.jsonl"


def ex(user: str, answer: str, source: str = "human", **kw) -> dict:
    return make_example([{"role": "user", "content": user}, {"role": "assistant", "content": answer}], source, **kw)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- sources -----------------------------------------------------------------------------------
def test_seed_source_reads_real_files_and_conserves_counts() -> None:
    load = load_source_examples([ALPACA, SHAREGPT, CHATML], "human")
    assert load.read == 999 + 500 + 5
    assert load.read == len(load.examples) + len(load.quarantine)
    reasons = load.quarantine_reasons()
    assert reasons == {"no_user_turn": 1, "degenerate_output": 1}  # the toy file's two broken rows
    bad = [q for q in load.quarantine if q["reason"] == "no_user_turn"][0]
    assert bad["source_file"].endswith("chatml_openai_toy.jsonl") and bad["line"] >= 1 and bad["raw"]
    assert {e["source"] for e in load.examples} == {"human"}
    assert json.loads(load.examples[0]["lineage"])["format"] == "alpaca"


def test_synthetic_requires_generator_per_row_and_per_file(tmp_path: Path) -> None:
    none = write_jsonl(tmp_path / "none.jsonl", [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a."}]}])
    some = write_jsonl(tmp_path / "some.jsonl", [
        {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1."}], "generator": "gen-a"},
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2."}]},
    ])
    load = load_source_examples([none, some, tmp_path / "missing.jsonl"], "synthetic", generator_keys=("generator",))
    assert Counter(q["reason"] for q in load.quarantine) == {"file_without_generator": 1, "missing_generator": 1, "unreadable_file": 1}
    missing = next(q for q in load.quarantine if q["reason"] == "missing_generator")
    assert missing["line"] == 2 and "some.jsonl" in missing["detail"]
    assert [e["generator"] for e in load.examples] == ["gen-a"]
    assert load.read == len(load.examples) + len(load.quarantine)


def test_distilled_names_the_teacher(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "Add 2 and 3.", "input": "", "output": "5.", "teacher": "big-teacher"}])
    load = load_source_examples([f], "distilled", generator_keys=("teacher", "generator"))
    (row,) = load.examples
    assert row["source"] == "distilled" and row["generator"] == "big-teacher"


# --- steps on real data --------------------------------------------------------------------------
def test_alpaca_exact_duplicates_found_and_reported() -> None:
    rows = load_source_examples([ALPACA], "human").examples
    result = curate(rows, CurationConfig(), EvalItems([]))
    exact = [d for d in result.drops if d["reason"] == "exact_duplicate"]
    originals = Counter(json.dumps(r, sort_keys=True) for r in json.loads(ALPACA.read_text()))
    assert len(exact) == sum(c - 1 for c in originals.values()) == 14
    kept_ids = {r["example_id"] for r in result.rows}
    assert all(d["kept_instead"] in kept_ids and d["step"] == "dedup" for d in exact)
    dedup = next(r for r in result.reports if r.step == "dedup")
    assert dedup.n_in - dedup.n_out == sum(dedup.dropped.values())


def test_sharegpt_near_identical_conversations_found() -> None:
    rows = load_source_examples([SHAREGPT], "human").examples
    result = curate(rows, CurationConfig(), EvalItems([]))
    near = [d for d in result.drops if d["reason"] == "near_duplicate"]
    assert len(near) > 250  # "many near-identical conversations"
    by_id = {r["example_id"]: r for r in rows}
    kept = {r["example_id"] for r in result.rows}
    sample = random.Random(0).sample(near, 20)
    for d in sample:  # each dropped conversation really is close to the one kept instead
        a, b = by_id[d["example_id"]]["messages"], by_id[d["kept_instead"]]["messages"]
        assert d["kept_instead"] in kept
        text = lambda m: "\n".join(t["content"] for t in m[:-1])  # noqa: E731
        assert exact_jaccard(text(a), text(b)) >= 0.6


def test_chatml_toy_conserves_counts_through_every_step() -> None:
    load = load_source_examples([CHATML], "human")
    result = curate(load.examples, CurationConfig(min_examples=1, target_examples=1), EvalItems([]))
    for rep in result.reports:
        assert rep.n_in == rep.n_out + sum(rep.dropped.values())
    assert len(load.examples) == len(result.rows) + len(result.drops)


# --- 1. format -------------------------------------------------------------------------------------
def test_format_step_system_prompt_policy() -> None:
    cfg = CurationConfig(system_prompt="You are the support bot.")
    same = make_example([{"role": "system", "content": "You are the support bot."}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "Hello."}], "human")
    other = make_example([{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "Arr."}], "human")
    missing = ex("reset pw", "Go to Settings > Security.")
    broken = make_example([{"role": "assistant", "content": "no user"}], "human")
    ctx = CurationContext(cfg)
    rows, _ = run_steps([same, other, missing, broken], ctx, [FormatStep()])
    assert {d["reason"] for d in ctx.drops} == {"system_prompt_mismatch", "no_user_turn"}
    fixed = next(r for r in rows if r["messages"][-1]["content"].startswith("Go to"))
    assert fixed["messages"][0] == {"role": "system", "content": "You are the support bot."}
    assert fixed["example_id"] != missing["example_id"]
    assert json.loads(fixed["lineage"])["original_example_id"] == missing["example_id"]


# --- 2. rubric ---------------------------------------------------------------------------------------
def test_rubric_one_rule_flags_two_rules_drop() -> None:
    cfg = CurationConfig(answer_max_chars=60, answer_regex=r"^[A-Z]")
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
    cfg = CurationConfig(answer_json_schema=schema, answer_regex=r"^\{", refusal_is_allowed=True)
    good = ex("cancel my order", '{"intent": "cancel"}')
    bad = ex("cancel my order pls", "Sure, cancelling now.")
    refusal = ex("x", '{"intent": "I\'m sorry, but I can\'t"}')
    ctx = CurationContext(cfg)
    rows, _ = run_steps([good, bad, refusal], ctx, [RubricStep()])
    assert {r["example_id"] for r in rows} == {good["example_id"], refusal["example_id"]}
    assert ctx.drops[0]["reason"] == "answer_json_schema+answer_regex"


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


# --- 3/4. duplicates and conflicts ---------------------------------------------------------------
def test_dedup_keeps_most_trusted_source() -> None:
    q = "how do i reset my password on the mobile app"
    a = "Open Settings, then Security, then Reset password."
    rows = [ex(q, a, "synthetic", generator="g1"), ex(q + "?", a, "distilled", generator="t"), ex(q + "??", a, "human"),
            ex(q + " ", a + " ", "real", weight=3.0), ex(q + "!", a, "real", human_fixed=True)]
    ctx = CurationContext(CurationConfig())
    kept, _ = run_steps(rows, ctx, [DedupStep()])
    assert len(kept) == 1 and kept[0]["human_fixed"]
    instead = {d["example_id"]: d["kept_instead"] for d in ctx.drops}
    for d in ctx.drops:  # every drop points (directly or through a dropped copy) at the kept one
        target = d["kept_instead"]
        while target in instead:
            target = instead[target]
        assert target == kept[0]["example_id"]


def test_conflicts_listed_for_review() -> None:
    q = "what is the refund window for annual plans"
    rows = [ex(q, "Annual plans can be refunded within 30 days of purchase.", "real"),
            ex(q + "?", "Refunds are never possible, sorry about that!", "synthetic", generator="g1"),
            ex("an unrelated question about shipping times to canada", "Five to seven business days.", "human")]
    ctx = CurationContext(CurationConfig())
    kept, reports = run_steps(rows, ctx, [DedupStep(), ConflictStep()])
    assert len(kept) == 2
    (c,) = ctx.conflicts
    assert c["source"] == "synthetic" and c["kept_source"] == "real" and c["similarity"] < 0.5
    assert c["messages"] == rows[1]["messages"]  # the dropped conversation, for the review batch
    assert reports[1].dropped == {"conflicting_answer": 1}


# --- 5. decontamination ----------------------------------------------------------------------------
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


# --- 6. balance -------------------------------------------------------------------------------------
def test_balance_ratio_self_generated_and_generator_share() -> None:
    real = [ex(f"real question {i}", f"Real answer {i}.", "real") for i in range(3)]
    syn = [ex(f"syn question {i}", f"Syn answer {i}.", "synthetic", generator="gen-a" if i % 5 else "gen-b") for i in range(50)]
    mine = [ex(f"self question {i}", f"Self answer {i}.", "distilled", generator="model-v3") for i in range(10)]
    cfg = CurationConfig(max_synthetic_per_real=10, max_self_generated_share=0.1)
    ctx = CurationContext(cfg, production_model_versions={"model-v3"})
    kept, (report,) = run_steps(real + syn + mine, ctx, [BalanceStep()])
    assert sum(r["source"] == "synthetic" for r in kept) == 30
    n_self = sum(r["generator"] == "model-v3" for r in kept)
    assert n_self / len(kept) <= 0.1 and n_self == 3  # 0.1 * 33 / 0.9 = 3.67
    assert report.dropped == {"synthetic_over_ratio": 20, "self_generated_over_share": 7}
    assert any("gen-a" in w for w in ctx.warnings)  # gen-a wrote 80% > 70%
    again = CurationContext(cfg, production_model_versions={"model-v3"})
    kept2, _ = run_steps(real + syn + mine, again, [BalanceStep()])
    assert [r["example_id"] for r in kept2] == [r["example_id"] for r in kept]  # seeded


# --- versions -----------------------------------------------------------------------------------------
def _rows(n: int) -> list[dict]:
    rng = random.Random(1)
    words = "account billing password refund order shipping invoice login email phone plan upgrade".split()
    out = []
    for i in range(n):
        q = " ".join(rng.choice(words) for _ in range(6)) + f" case {i}"
        out.append(ex(q, f"For case {i}, open {rng.choice(words)} settings and follow the {rng.choice(words)} steps.", "human"))
    return out


def test_version_is_content_hash_independent_of_order(tmp_path: Path) -> None:
    rows = _rows(40)
    cfg = CurationConfig(min_examples=10, target_examples=20, review_sample_size=5)
    a = curate(rows, cfg, EvalItems([]))
    b = curate(list(reversed(rows)), cfg, EvalItems([]))
    assert content_hash(a.rows) == content_hash(b.rows)
    home = FlywheelHome(tmp_path / "home")
    dv = write_dataset_version(home, a, rubric_text="# rubric", rubric_path="rubric.md", rubric_problem=None, created="x")
    dv2 = write_dataset_version(home, b, rubric_text="# rubric", rubric_path="rubric.md", rubric_problem=None, created="y")
    assert dv.version == dv2.version == content_hash(a.rows)[:12]
    for name in ("train.parquet", "drops.parquet", "flagged.parquet", "conflicts.parquet", "card.md", "manifest.json"):
        assert (dv.path / name).exists()
    assert len((dv.path / "review_sample.jsonl").read_text().splitlines()) == 5
    assert pq.read_table(dv.path / "train.parquet").num_rows == len(a.rows)
    assert latest_version(home) == dv.version
    card = (dv.path / "card.md").read_text()
    assert dv.version in card and "## Drop reasons" in card and "## Diversity" in card and "> # rubric" in card


def test_blocking_rules_keep_latest_untouched(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    cfg = CurationConfig(min_examples=100, target_examples=100)
    result = curate(_rows(20), cfg, EvalItems(None, "warehouse/fixed_eval_set/current.parquet"))
    dv = write_dataset_version(home, result, rubric_text="r", rubric_path="r.md", rubric_problem=None)
    failing = {r.name for r in dv.blocking_failures}
    assert failing == {"size_floor", "no_eval_contamination"}
    assert "fixed_eval_set" in next(r.message for r in dv.rules if r.name == "no_eval_contamination")
    assert latest_version(home) is None


def test_diversity_drop_is_measured_against_previous_version(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    cfg = CurationConfig(min_examples=10, target_examples=10)
    varied = _rows(60)
    write_dataset_version(home, curate(varied, cfg, EvalItems([])), rubric_text="r", rubric_path="r.md", rubric_problem=None)
    narrow = [ex(f"question {i}", "Please open settings and follow the steps there.", "human") for i in range(60)]
    narrow = [ex(r["messages"][0]["content"], f"Please open settings and follow the steps there, case {i}.") for i, r in enumerate(narrow)]
    dv = write_dataset_version(home, curate(varied[:10] + narrow, cfg, EvalItems([])), rubric_text="r", rubric_path="r.md",
                               rubric_problem=None)
    rule = next(r for r in dv.rules if r.name == "diversity_drop")
    assert not rule.passed and dv.manifest["diversity_changes"]


# --- near duplicates -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["numpy", "datasketch"])
def test_near_duplicate_engines_find_planted_pairs(engine: str) -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(words) for _ in range(80)) for _ in range(200)]
    texts = base + [b.replace(b.split()[5], "changed", 1) for b in base[:50]]
    labels = near_duplicate_clusters(texts, 0.8, engine=engine)
    truth = [i for i in range(50) if exact_jaccard(texts[i], texts[200 + i]) >= 0.88]
    assert len(truth) >= 40
    assert sum(labels[200 + i] == labels[i] for i in truth) >= 0.9 * len(truth)
    assert len(set(labels[:200].tolist())) == 200  # unrelated texts stay apart


def test_minhash_estimates_jaccard() -> None:
    a = "the cat sat on the mat and looked at the door for a while"
    b = "the cat sat on the mat and looked at the window for a while"
    sig = MinHasher(num_perm=256).signatures([a, b])
    est = float((sig[0] == sig[1]).mean())
    assert abs(est - exact_jaccard(a, b)) < 0.1
    assert np.array_equal(MinHasher(num_perm=256).signatures([a]), sig[:1])
