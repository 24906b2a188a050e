"""How the training inputs compare with what production actually sends.

Production inputs are short, lower-case, typo-laden and abbreviated; hand-written or generated
training inputs are usually clean. This module measures the gap on the last weeks of
`warehouse/interactions/<day>.parquet` (`input_text`):

- KS statistic between the two input-length (words) distributions (0 = same, 1 = disjoint);
- the share of short / lower-case / typo-laden / abbreviation-heavy inputs on each side, and the
  kinds of production input the training set has too few of;
- a classifier two-sample test: a linear classifier (nearest centroid, numpy) on hashed char-3-gram
  features tries to tell training inputs from production inputs; held-out AUC near 0.5 =
  indistinguishable, near 1 = production looks nothing like the training inputs.

`input_length_histogram` draws the two length distributions side by side (a PNG for the dataset card).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.capture.profile import (  # the production-input profile's one home (re-exported here)
    KINDS,
    build_vocabulary,
    input_kinds,
    recent_production_inputs,
)
from flywheel.core.storage import atomic_path, storage_path
from flywheel.curation.diversity import char_ngram_tfidf, seeded_sample

__all__ = ["INPUT_LENGTHS_PNG", "KINDS", "build_vocabulary", "classifier_two_sample_auc", "input_kinds",
           "input_length_histogram", "ks_statistic", "length_shares", "production_gap", "recent_production_inputs",
           "roc_auc"]

INPUT_LENGTHS_PNG = "input_lengths.png"


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if len(x) == 0 or len(y) == 0:
        return 0.0
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties averaged)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return 0.5
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classifier_two_sample_auc(train: Sequence[str], production: Sequence[str], seed: int = 0, per_side: int = 1000) -> float | None:
    """Held-out AUC of a linear classifier telling production (1) from training (0) inputs.

    Features: case-sensitive hashed char-3-gram TF-IDF. Classifier: the difference of the two class
    centroids on 70% of the rows (a nearest-centroid linear rule: one matrix product, no iterations,
    so it stays fast on a busy 2-core machine); AUC on the held-out 30%.
    """
    a = seeded_sample(list(train), per_side, seed)
    b = seeded_sample(list(production), per_side, seed + 1)
    n = min(len(a), len(b))
    if n < 20:
        return None
    a, b = a[:n], b[:n]
    x, _ = char_ngram_tfidf(a + b, dims=1024, lowercase=False)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    perm = np.random.default_rng(seed).permutation(2 * n)
    cut = int(0.7 * len(perm))
    tr, te = perm[:cut], perm[cut:]
    direction = x[tr][y[tr] == 1].mean(axis=0) - x[tr][y[tr] == 0].mean(axis=0)
    return roc_auc(x[te] @ direction, y[te])


def production_gap(train_inputs: Sequence[str], production_inputs: Sequence[str], vocabulary: set[str], seed: int = 0,
                   sample_size: int = 5000) -> dict[str, Any]:
    """The gap between training and production inputs (see the module doc); `available` False without traffic."""
    if not production_inputs or not train_inputs:
        return {"available": False, "production_inputs": len(production_inputs), "training_inputs": len(train_inputs)}
    tr = seeded_sample(list(train_inputs), sample_size, seed)
    pr = seeded_sample(list(production_inputs), sample_size, seed)
    ks = ks_statistic([len(t.split()) for t in tr], [len(t.split()) for t in pr])
    kinds_tr = [input_kinds(t, vocabulary) for t in tr]
    kinds_pr = [input_kinds(t, vocabulary) for t in pr]
    shares = {}
    under = []
    for kind in KINDS:
        p_share = sum(k[kind] for k in kinds_pr) / len(pr)
        t_share = sum(k[kind] for k in kinds_tr) / len(tr)
        shares[kind] = {"production": round(p_share, 4), "training": round(t_share, 4)}
        if p_share >= 0.05 and t_share < 0.5 * p_share:
            under.append(kind)
    auc = classifier_two_sample_auc(tr, pr, seed)
    score = max(ks, 0.0 if auc is None else 2 * abs(auc - 0.5))
    return {
        "available": True,
        "production_inputs": len(production_inputs),
        "training_inputs": len(train_inputs),
        "length_ks": round(ks, 4),
        "median_words": {"production": float(np.median([len(t.split()) for t in pr])),
                         "training": float(np.median([len(t.split()) for t in tr]))},
        "shares": shares,
        "classifier_auc": None if auc is None else round(auc, 4),
        "underrepresented_kinds": under,
        "gap_score": round(score, 4),
    }


def length_shares(texts: Sequence[str], max_words: int) -> np.ndarray:
    """Share of `texts` with 0, 1, ..., `max_words - 1` and `max_words` or more words (sums to 1)."""
    counts = np.bincount(np.minimum([len(t.split()) for t in texts], max_words).astype(np.int64), minlength=max_words + 1)
    return counts / max(len(texts), 1)


def input_length_histogram(train_inputs: Sequence[str], production_inputs: Sequence[str], target: str | Path,
                           max_words: int = 60, seed: int = 0, sample_size: int = 20_000) -> Path:
    """A PNG of the input length (words) distributions, training vs production, as shares per length
    (the last bar holds `max_words` and longer). Without production inputs only training is drawn."""
    from matplotlib.figure import Figure  # the object API: no pyplot global state in a worker process

    train = seeded_sample(list(train_inputs), sample_size, seed)
    prod = seeded_sample(list(production_inputs), sample_size, seed)
    x = np.arange(max_words + 1)
    fig = Figure(figsize=(7, 3.2), dpi=100)
    ax = fig.add_subplot()
    sides = [("training", train, "tab:blue")] + ([("production", prod, "tab:orange")] if prod else [])
    for label, texts, color in sides:
        median = float(np.median([len(t.split()) for t in texts])) if texts else 0.0
        ax.step(x, length_shares(texts, max_words), where="mid", color=color,
                label=f"{label}: {len(texts)} inputs, median {median:g} words")
    ax.set_xlabel(f"input length (words; last bin = {max_words}+)")
    ax.set_ylabel("share of inputs")
    ax.set_title("Input length: training vs production" if prod else "Input length: training (no production traffic)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return storage_path(target)
