"""Diversity measures and the production distribution gap."""

from __future__ import annotations

import random

import numpy as np

from flywheel.curation.diversity import (
    InputClusters,
    compression_ratio,
    distinct_n,
    diversity_changes,
    diversity_report,
    normalized_entropy,
    self_bleu,
)
from flywheel.curation.production_gap import (
    build_vocabulary,
    classifier_two_sample_auc,
    input_kinds,
    ks_statistic,
    production_gap,
    recent_production_inputs,
    roc_auc,
)

rng = random.Random(7)
WORDS = [f"{a}{b}" for a in "bcdfghklmnprst" for b in ("ar", "en", "ol", "ump", "ix", "ade")]
VARIED = [" ".join(rng.choice(WORDS) for _ in range(20)) + "." for _ in range(300)]
SAME = ["The answer is in the settings page under security." for _ in range(300)]


def test_distinct_n_values() -> None:
    assert distinct_n(["a b c d"], 1) == 1.0
    assert distinct_n(["a a a a"], 1) == 0.25
    assert distinct_n(["a b a b"], 2) == 2 / 3
    assert distinct_n([], 2) == 0.0
    assert distinct_n(VARIED, 2) > 0.5 > 0.1 > distinct_n(SAME, 2)


def test_compression_and_self_bleu_rank_repetitive_text() -> None:
    assert compression_ratio(SAME) > 10 * compression_ratio(VARIED)
    high, low = self_bleu(SAME, seed=0), self_bleu(VARIED, seed=0)
    assert high is not None and low is not None
    assert high > 90 and low < 20
    assert self_bleu(VARIED, seed=0) == low  # seeded
    assert self_bleu(["one", "two"]) is None


def test_cluster_coverage_and_entropy() -> None:
    topics = {t: [f"{t} question {w} {rng.choice(WORDS)}" for w in WORDS[:40]] for t in ("refund", "password", "shipping", "invoice")}
    reference = [q for qs in topics.values() for q in qs]
    clusters = InputClusters(reference, seed=0, max_clusters=4)
    only_refund = clusters.coverage(clusters.assign(topics["refund"]))
    everything = clusters.coverage(clusters.assign(reference))
    assert everything == 1.0 and only_refund < everything
    assert normalized_entropy(np.array([0, 1, 2, 3]), 4) == 1.0
    assert normalized_entropy(np.array([2, 2, 2]), 4) == 0.0


def test_report_per_source_and_generator_and_drop_warning() -> None:
    n = len(VARIED)
    sources = ["human"] * 100 + ["synthetic"] * (n - 100)
    gens = [None] * 100 + ["gen-a"] * (n - 100)
    inputs = [v[:40] for v in VARIED]
    before = diversity_report(inputs, VARIED, sources, gens, seed=0)
    assert set(before["groups"]) == {"source:human", "source:synthetic", "generator:gen-a"}
    assert before["overall"]["n"] == n and before["groups"]["source:human"]["n"] == 100
    collapsed = VARIED[:100] + SAME[: n - 100]
    after = diversity_report(inputs, collapsed, sources, gens, seed=0)
    changes = diversity_changes(after, before, drop_warn=0.1)
    warned = {(c["group"], c["metric"]) for c in changes if c["warn"]}
    assert ("generator:gen-a", "distinct_2") in warned and ("generator:gen-a", "self_bleu") in warned
    assert not any(c["warn"] for c in changes if c["group"] == "source:human")
    assert diversity_changes(after, None, 0.1) == []


def test_ks_and_auc() -> None:
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2, 3], [10, 11, 12]) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    clean = [f"How do I {rng.choice(['reset', 'change'])} my {rng.choice(WORDS)} password?" for _ in range(400)]
    messy = [f"pls {rng.choice(WORDS)} pw rst asap" for _ in range(400)]
    assert classifier_two_sample_auc(clean, messy, seed=0) > 0.95
    same = classifier_two_sample_auc(clean[:200], clean[200:], seed=0)
    assert same is not None and abs(same - 0.5) < 0.15


def test_input_kinds_and_gap() -> None:
    vocab = build_vocabulary(["How do I reset my password on the website?"])
    kinds = input_kinds("pls rst pw thx", vocab)
    assert kinds["short"] and kinds["lower_case"] and kinds["abbreviation_heavy"] and kinds["no_punctuation"]
    assert input_kinds("passwrod resset noot wrking", vocab)["typo_laden"]
    assert not any(input_kinds("How do I reset my password on the website?", vocab)[k] for k in ("short", "typo_laden", "lower_case"))
    train = [f"How do I reset the password of my {w} account on the website?" for w in WORDS]
    prod = [f"pls rst pw {w}" for w in WORDS]
    gap = production_gap(train, prod, vocab, seed=0)
    assert gap["available"] and gap["length_ks"] == 1.0 and gap["gap_score"] > 0.5
    assert {"short", "abbreviation_heavy"} <= set(gap["underrepresented_kinds"])
    assert production_gap(train, [], vocab)["available"] is False


def test_recent_production_inputs_reads_last_weeks(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for day, text in [("2026-01-01", "old input"), ("2026-02-20", "recent one"), ("2026-03-01", "newest")]:
        pq.write_table(pa.table({"input_text": [text], "model_version": ["m-1"]}), tmp_path / f"{day}.parquet")
    texts, versions = recent_production_inputs(tmp_path, weeks=4)
    assert sorted(texts) == ["newest", "recent one"] and versions == {"m-1"}
    assert recent_production_inputs(tmp_path / "none") == ([], set())
