"""Diversity of a training dataset, per source and per generator, and its change across versions.

A falling diversity across dataset versions is the signature of model collapse (a model trained on
its own outputs narrows). Measures, all embedding-free:

- distinct-1 / distinct-2: unique word n-grams over all n-grams of the answers (higher = more varied);
  taken on a seeded sample of at most `sample_size` answers so versions of different size compare.
- compression ratio: raw bytes / zlib-compressed bytes of the same sample (higher = more repetitive).
- self-BLEU (sacrebleu): the sample split in two seeded halves, each answer scored against the other
  half as references, averaged (higher = answers resemble each other more).
- cluster coverage: inputs as hashed char-3-gram TF-IDF vectors, spherical k-means (numpy) fit on a
  reference (the production inputs when there are any, else the dataset's inputs); coverage = share
  of the reference clusters holding at least one example of the group, and the normalized entropy of
  the dataset over those clusters (both on a seeded sample of at most 10,000 rows).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from flywheel.core.sampling import seeded_sample
from flywheel.curation.near_duplicates import shingle_hashes

_WORD = re.compile(r"\w+")
FEATURE_DIMS = 2048
HIGHER_IS_MORE_DIVERSE = {"distinct_1": True, "distinct_2": True, "compression_ratio": False, "self_bleu": False,
                          "cluster_coverage": True, "cluster_entropy": True}


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams / all word n-grams (0 when there are none)."""
    total, seen = 0, set()
    for t in texts:
        words = _WORD.findall(t.lower())
        grams = list(zip(*(words[i:] for i in range(n)), strict=False))
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def compression_ratio(texts: Sequence[str]) -> float:
    """Raw size / zlib-compressed size of the texts joined by newlines (1 = incompressible)."""
    raw = "\n".join(texts).encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 6)) if raw else 0.0


def self_bleu(texts: Sequence[str], seed: int = 0, sample_size: int = 200) -> float | None:
    """Mean sacrebleu sentence BLEU (0-100) of each sampled text against the other half of the sample."""
    sample = [t for t in seeded_sample([t for t in texts if t.strip()], sample_size, seed)]
    if len(sample) < 4:
        return None
    order = np.random.default_rng(seed + 1).permutation(len(sample))
    half_a = [sample[i] for i in order[: len(sample) // 2]]
    half_b = [sample[i] for i in order[len(sample) // 2 :]]
    from sacrebleu.metrics import BLEU  # imported on first use: the code location starts faster

    scores = []
    for hyps, refs in ((half_a, half_b), (half_b, half_a)):
        # sacrebleu's multi-reference sentence BLEU, with the other half's n-grams extracted once
        # (the same score as `bleu.sentence_score(h, refs)`, without re-reading refs per hypothesis)
        bleu = BLEU(effective_order=True)
        ref_info = bleu._extract_reference_info([bleu._preprocess_segment(r) for r in refs])
        for h in hyps:
            stats = bleu._compute_segment_statistics(bleu._preprocess_segment(h), ref_info)
            scores.append(bleu._compute_score_from_stats(stats).score)
    return float(np.mean(scores))


def char_ngram_tfidf(texts: Sequence[str], dims: int = FEATURE_DIMS, n: int = 3, idf: np.ndarray | None = None,
                     lowercase: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Hashed char-n-gram TF-IDF rows, L2-normalized; returns (matrix, idf) so others reuse the idf."""
    hashes, offsets = shingle_hashes(texts, n, lowercase=lowercase)
    rows = np.repeat(np.arange(len(texts)), np.diff(offsets))
    cols = (hashes % np.uint64(dims)).astype(np.int64)
    counts = np.bincount(rows * dims + cols, minlength=len(texts) * dims).astype(np.float32).reshape(len(texts), dims)
    if idf is None:
        df = (counts > 0).sum(axis=0)
        idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)
    x = np.log1p(counts) * idf
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-9), idf


def spherical_kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 15) -> np.ndarray:
    """Centroids of k-means on the unit sphere (cosine), k-means++ seeded initialization."""
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(len(x))]]
    closest = 1 - x @ centroids[0]
    for _ in range(1, k):
        p = np.maximum(closest, 0) ** 2
        pick = rng.choice(len(x), p=p / p.sum()) if p.sum() > 0 else rng.integers(len(x))
        centroids.append(x[pick])
        closest = np.minimum(closest, 1 - x @ x[pick])
    c = np.stack(centroids)
    for _ in range(iterations):
        labels = np.argmax(x @ c.T, axis=1)
        for j in range(k):
            members = x[labels == j]
            if len(members):
                m = members.sum(axis=0)
                c[j] = m / max(np.linalg.norm(m), 1e-9)
    return c


class InputClusters:
    """Clusters of a reference set of inputs; assigns other inputs to the nearest one."""

    def __init__(self, reference: Sequence[str], seed: int = 0, max_clusters: int = 20, max_fit: int = 3000) -> None:
        fit = seeded_sample(list(reference), max_fit, seed)
        x, self.idf = char_ngram_tfidf(fit)
        self.k = max(1, min(max_clusters, len(set(fit)) // 10 or 1))
        self.centroids = spherical_kmeans(x, self.k, seed=seed)
        self.reference_clusters = set(self.assign(fit).tolist())

    def assign(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.int64)
        out = []
        for start in range(0, len(texts), 20_000):
            x, _ = char_ngram_tfidf(texts[start : start + 20_000], idf=self.idf)
            out.append(np.argmax(x @ self.centroids.T, axis=1))
        return np.concatenate(out)

    def coverage(self, labels: np.ndarray) -> float:
        """Share of the reference's clusters holding at least one of `labels`."""
        if not self.reference_clusters:
            return 0.0
        return len(set(labels.tolist()) & self.reference_clusters) / len(self.reference_clusters)


def normalized_entropy(labels: np.ndarray, k: int) -> float:
    """Entropy of the cluster distribution / log(k): 1 = spread evenly, 0 = all in one cluster."""
    if len(labels) == 0 or k <= 1:
        return 0.0
    p = np.bincount(labels, minlength=k) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(k))


def text_stats(answers: Sequence[str], seed: int, sample_size: int = 2000, bleu_sample: int = 200) -> dict[str, float | None]:
    """distinct-1/2, compression ratio and self-BLEU of a seeded sample of answers."""
    sample = seeded_sample(list(answers), sample_size, seed)
    return {
        "n": len(answers),
        "distinct_1": round(distinct_n(sample, 1), 4),
        "distinct_2": round(distinct_n(sample, 2), 4),
        "compression_ratio": round(compression_ratio(sample), 4),
        "self_bleu": None if (s := self_bleu(sample, seed, bleu_sample)) is None else round(s, 2),
    }


def diversity_report(
    inputs: Sequence[str],
    answers: Sequence[str],
    sources: Sequence[str],
    generators: Sequence[str | None],
    reference_inputs: Sequence[str] = (),
    seed: int = 0,
    sample_size: int = 2000,
    group_bleu_sample: int = 100,
) -> dict[str, Any]:
    """Diversity overall, per source and per generator (text stats on answers, coverage on inputs)."""
    groups: dict[str, list[int]] = {}
    for i, (s, g) in enumerate(zip(sources, generators, strict=True)):
        groups.setdefault(f"source:{s}", []).append(i)
        if g:
            groups.setdefault(f"generator:{g}", []).append(i)
    reference = list(reference_inputs) if len(reference_inputs) >= 20 else list(inputs)
    report: dict[str, Any] = {"reference": "production" if reference is not inputs and len(reference_inputs) >= 20 else "dataset"}
    if not inputs:
        report["overall"] = {"n": 0}
        report["groups"] = {}
        return report
    clusters = InputClusters(reference, seed=seed)
    # coverage on a seeded sample of rows (fixed size, so versions of different size compare)
    sample_idx = np.array(seeded_sample(range(len(inputs)), 10_000, seed), dtype=np.int64)
    labels = np.full(len(inputs), -1, dtype=np.int64)
    labels[sample_idx] = clusters.assign([inputs[i] for i in sample_idx])
    overall = text_stats(answers, seed, sample_size)
    overall["cluster_coverage"] = round(clusters.coverage(labels[sample_idx]), 4)
    overall["cluster_entropy"] = round(normalized_entropy(labels[sample_idx], clusters.k), 4)
    overall["clusters"] = clusters.k
    report["overall"] = overall
    report["groups"] = {}
    for name, idx in sorted(groups.items()):
        stats = text_stats([answers[i] for i in idx], seed, sample_size, group_bleu_sample)
        group_labels = labels[idx]
        stats["cluster_coverage"] = round(clusters.coverage(group_labels[group_labels >= 0]), 4)
        report["groups"][name] = stats
    return report


def diversity_changes(current: dict[str, Any], previous: dict[str, Any] | None, drop_warn: float) -> list[dict[str, Any]]:
    """Per metric and group: previous, current, relative change toward less diversity, and a warn flag.

    `change` > 0 means less diverse than before; a warning when it exceeds `drop_warn` (relative).
    """
    if not previous or "overall" not in previous:
        return []
    rows = []
    pairs = [("overall", current.get("overall", {}), previous.get("overall", {}))]
    for name, stats in current.get("groups", {}).items():
        if name in previous.get("groups", {}):
            pairs.append((name, stats, previous["groups"][name]))
    for group, cur, prev in pairs:
        for metric, higher_better in HIGHER_IS_MORE_DIVERSE.items():
            a, b = prev.get(metric), cur.get(metric)
            if a is None or b is None or a == 0:
                continue
            loss = (a - b) / abs(a) if higher_better else (b - a) / abs(a)
            rows.append({"group": group, "metric": metric, "previous": a, "current": b,
                         "change": round(loss, 4), "warn": bool(loss > drop_warn)})
    return rows
