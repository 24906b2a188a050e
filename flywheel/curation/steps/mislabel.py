"""Step 4b, mislabels: a question paired with another question's answer (confident learning).

The conflicts step sees only near-same *inputs* that disagree; a batch job that shuffled answers
pairs distinct questions with wrong answers and passes it. Here:

1. Answers are grouped into classes: the same normalised text (`core.text.shingle_form`), then a
   near-duplicate answer (MinHash Jaccard >= `mislabel_answer_threshold`) joins the class of the
   most frequent answer it is near.
2. Only classes of at least `mislabel_min_class_examples` rows take part; rows of smaller classes
   (most free-text answers are a class of one) are left alone and counted (`rows_in_small_classes`).
3. A nearest-centroid classifier predicts the class from the input (the last user turn): L2-normalised
   TF-IDF over hashed character 3-5-grams, a class's centroid is the sum of its rows, the class
   probability a softmax of the cosines. Each row is scored leave-one-out (its own vector taken out
   of its class's centroid: the exact n-fold cross-validation of this model, cheap and seed-free).
4. Confident learning (Northcutt et al., JAIR 2021): a class's threshold is the mean probability its
   own rows give it. A row is mislabeled when the probability of its own class is below that class's
   threshold while the most probable class is another one and reaches its own threshold. (Requiring
   the most probable class keeps a class whose rows are all wrong, whose threshold is then near 0,
   from claiming every row that gives it a little probability.)
5. Prune and refit once: the centroids are rebuilt without the rows the first fit found (shuffled
   answers pollute the centroids of the classes they were given) and the rows are scored again; the
   second fit's findings are the result (on the demo's shuffled generator this halves the false
   positives at the same recall; see benchmarks/mislabel.py).

Rows with an answer a person fixed (`human_fixed`) train the centroids but are never found.
`mislabel_action` drops the rows found (default) or only flags them for review; either way the
reason names the class the input reads like, with one of its answers, and `ctx.facts["mislabel"]`
counts rows checked and found per source and per generator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from flywheel.core.text import final_answer, input_match_key, last_user_text, shingle_form
from flywheel.curation.context import CurationContext, Step
from flywheel.curation.near_duplicates import (
    MinHasher,
    candidate_links,
    clusters_from_pairs,
    estimated_jaccard,
    shingle_hashes,
)

RULE = "mislabeled_answer"
NGRAMS = (3, 4, 5)
FEATURES = 1 << 20
TEMPERATURE = 0.05
"""Softmax temperature over cosines (0-1): 0.05 turns a cosine gap of 0.1 into odds of e^2."""
_CELLS = 1 << 22  # rows x classes scored at once


def answer_classes(answers: Sequence[str], threshold: float, hasher: MinHasher) -> np.ndarray:
    """A class label (0..K-1, the most frequent class first) per answer.

    Equal normalised answers share a class. Distinct answers are then visited from the most frequent
    down; one joins the class of the first more frequent answer (a representative) whose MinHash
    Jaccard with it is >= `threshold` (checked directly, so A~B~C chains do not join A and C).
    """
    keys = [shingle_form(a) for a in answers]
    counts = Counter(keys)
    distinct = sorted(counts, key=lambda k: (-counts[k], k))
    rep = np.arange(len(distinct))
    if threshold < 1 and len(distinct) > 1:
        sig = hasher.signatures(distinct)
        pairs = candidate_links(sig, threshold)
        if len(pairs):
            pairs = pairs[estimated_jaccard(sig, pairs) >= threshold]
        near: dict[int, list[int]] = {}
        for i, j in pairs.tolist():  # i > j: j is the more frequent answer
            near.setdefault(i, []).append(j)
        for i in sorted(near):
            reps = sorted({int(rep[j]) for j in near[i]})
            ok = np.flatnonzero((sig[reps] == sig[i]).mean(axis=1) >= threshold)
            if len(ok):
                rep[i] = reps[int(ok[0])]
    of_key = {k: i for i, k in enumerate(distinct)}
    _, labels = np.unique(rep[[of_key[k] for k in keys]], return_inverse=True)
    return labels.astype(np.int64).reshape(-1)


def input_features(texts: Sequence[str]) -> sparse.csr_matrix:
    """One L2-normalised row per text: TF-IDF (sublinear TF) over hashed character 3-5-grams of
    its match key (`core.text.input_match_key`, padded with a space at both ends)."""
    padded = [f" {input_match_key(t)} " for t in texts]
    n = len(padded)
    parts = []
    for k in NGRAMS:
        hashes, offsets = shingle_hashes(padded, k)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        parts.append(rows * FEATURES + (hashes % np.uint64(FEATURES)).astype(np.int64))
    keys, counts = np.unique(np.concatenate(parts), return_counts=True)
    rows, cols = keys // FEATURES, keys % FEATURES
    df = np.bincount(cols, minlength=FEATURES)
    values = (1.0 + np.log(counts)) * (np.log((1.0 + n) / (1.0 + df[cols])) + 1.0)
    x = sparse.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n, FEATURES))
    return _normalize_rows(x)


def _normalize_rows(x: sparse.csr_matrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return (sparse.diags((1.0 / np.maximum(norms, 1e-12)).astype(np.float32)) @ x).tocsr()


class CentroidModel:
    """Class centroids (sums of the rows' vectors, `exclude`d rows left out) scoring rows leave-one-out."""

    def __init__(self, x: sparse.csr_matrix, labels: np.ndarray, n_classes: int, exclude: np.ndarray) -> None:
        n = len(labels)
        self.x, self.labels = x, labels
        self.inside = ~exclude
        weights = self.inside.astype(np.float32)
        self.sums = (sparse.csr_matrix((weights, (labels, np.arange(n))), shape=(n_classes, n)) @ x).T.tocsr()
        self.sq = np.asarray(self.sums.multiply(self.sums).sum(axis=0), dtype=np.float64).ravel()
        self.self_sq = np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel()

    def probabilities(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), K) class probabilities of rows `idx`, each scored without its own vector."""
        dots = np.asarray((self.x[idx] @ self.sums).todense(), dtype=np.float64)
        norms = np.broadcast_to(np.sqrt(self.sq), dots.shape).copy()
        own = np.flatnonzero(self.inside[idx])
        rows, cls = idx[own], self.labels[idx[own]]
        own_dot = dots[own, cls] - self.self_sq[rows]
        norms[own, cls] = np.sqrt(np.maximum(self.sq[cls] - 2 * dots[own, cls] + self.self_sq[rows], 0.0))
        dots[own, cls] = own_dot
        scores = np.where(norms > 1e-9, dots / np.maximum(norms, 1e-9), 0.0) / TEMPERATURE
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)


@dataclass
class MislabelFinding:
    """A row (index into the checked rows) whose input reads like another class than its answer's."""

    row: int
    given: int
    predicted: int
    p_given: float
    p_predicted: float


def confident_mislabels(model: CentroidModel, labels: np.ndarray, n_classes: int,
                        share: float = 1.0) -> list[MislabelFinding]:
    """Rows whose own class's probability is below that class's threshold (the mean probability its
    rows give it) while the most probable class is another one and reaches `share` of its threshold."""
    n = len(labels)
    chunk = max(1, _CELLS // max(n_classes, 1))
    p_own = np.empty(n)
    for start in range(0, n, chunk):
        idx = np.arange(start, min(n, start + chunk))
        p_own[idx] = model.probabilities(idx)[np.arange(len(idx)), labels[idx]]
    thresholds = np.bincount(labels, weights=p_own, minlength=n_classes) / np.maximum(np.bincount(labels, minlength=n_classes), 1)
    out = []
    for start in range(0, n, chunk):
        idx = np.arange(start, min(n, start + chunk))
        idx = idx[p_own[idx] < thresholds[labels[idx]]]
        if not len(idx):
            continue
        probs = model.probabilities(idx)
        predicted = probs.argmax(axis=1)
        hit = (predicted != labels[idx]) & (probs[np.arange(len(idx)), predicted] >= share * thresholds[predicted])
        for j in np.flatnonzero(hit):
            i = int(idx[j])
            out.append(MislabelFinding(i, int(labels[i]), int(predicted[j]), float(p_own[i]), float(probs[j, predicted[j]])))
    return out


def same_input_classes(x: sparse.csr_matrix, labels: np.ndarray, n_classes: int, min_cosine: float) -> np.ndarray:
    """Per class, the class it is one with (the smallest index of its group): classes whose centroids
    have a cosine >= `min_cosine` answer the same questions with alternative answers (paraphrases of
    one reply), so no row of one is a mislabel of the other."""
    sums = sparse.csr_matrix((np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
                             shape=(n_classes, len(labels))) @ x
    centroids = _normalize_rows(sums.tocsr())
    pairs = []
    chunk = max(1, _CELLS // max(n_classes, 1))
    for start in range(0, n_classes, chunk):
        sim = np.asarray((centroids[start:start + chunk] @ centroids.T).todense())
        i, j = np.nonzero(sim >= min_cosine)
        i += start
        pairs.append(np.stack([j[j < i], i[j < i]], axis=1))
    return clusters_from_pairs(n_classes, np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64))


def find_mislabels(x: sparse.csr_matrix, labels: np.ndarray, n_classes: int, share: float = 1.0,
                   protected: np.ndarray | None = None) -> list[MislabelFinding]:
    """Fit (confident learning), prune the rows found from the centroids, refit: the second fit's
    findings, where the predicted class needs `share` of its threshold (`protected` rows are pruned
    like the others but never found)."""
    keep = np.ones(len(labels), dtype=bool) if protected is None else ~protected
    first = confident_mislabels(CentroidModel(x, labels, n_classes, np.zeros(len(labels), dtype=bool)), labels, n_classes)
    exclude = np.zeros(len(labels), dtype=bool)
    exclude[[f.row for f in first]] = True
    found = confident_mislabels(CentroidModel(x, labels, n_classes, exclude), labels, n_classes, share)
    return [f for f in found if keep[f.row]]


def _snippet(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


class MislabelStep(Step):
    """Rows whose input reads like another answer class's (leave-one-out confident learning): drop or flag."""

    name = "mislabel"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        answers = [final_answer(r["messages"]) for r in rows]
        hasher = MinHasher(num_perm=cfg.minhash_permutations, seed=cfg.seed + 2, shingle=cfg.shingle_chars)
        labels = answer_classes(answers, cfg.mislabel_answer_threshold, hasher)
        sizes = np.bincount(labels, minlength=1)
        big = np.flatnonzero(sizes >= cfg.mislabel_min_class_examples)
        member = np.flatnonzero(np.isin(labels, big))
        facts: dict[str, Any] = {
            "action": cfg.mislabel_action, "answer_classes": int(len(np.unique(labels))),
            "classes_checked": int(len(big)), "rows_checked": int(len(member)),
            "rows_in_small_classes": len(rows) - int(len(member)), "found": 0, "by_source": {}, "by_generator": {},
        }
        ctx.facts["mislabel"] = facts
        if len(big) < 2:
            facts["skipped"] = f"{len(big)} answer class(es) of at least {cfg.mislabel_min_class_examples} rows; 2 needed"
            return rows
        x = input_features([last_user_text(rows[i]["messages"]) for i in member])
        groups = same_input_classes(x, np.searchsorted(big, labels[member]), len(big), cfg.mislabel_same_inputs_cosine)
        heads, merged = np.unique(groups, return_inverse=True)  # heads: each merged class's first (largest) class
        local = merged.reshape(-1)[np.searchsorted(big, labels[member])]
        class_sizes = np.bincount(local)
        facts.update(classes_checked=len(heads), classes_merged=len(big) - len(heads))
        if len(heads) < 2:
            facts["skipped"] = f"the {len(big)} answer classes answer the same questions (one class)"
            return rows
        protected = np.array([bool(rows[i].get("human_fixed")) for i in member], dtype=bool)
        findings = find_mislabels(x, local, len(heads), cfg.mislabel_confidence, protected)
        sample = {int(c): answers[int(np.argmax(labels == big[c]))] for c in heads}
        drop = np.zeros(len(rows), dtype=bool)
        for f in findings:
            i = int(member[f.row])
            head = int(heads[f.predicted])
            detail = (f"the input reads like answer class {int(big[head])} ({class_sizes[f.predicted]} rows, "
                      f"p={f.p_predicted:.2f}: {_snippet(sample[head])!r}), not like its own answer's "
                      f"({class_sizes[f.given]} rows, p={f.p_given:.2f}: {_snippet(answers[i])!r})")
            if cfg.mislabel_action == "drop":
                drop[i] = True
                ctx.drop(rows[i], self.name, RULE, detail)
            else:
                ctx.flagged.append({"example_id": rows[i]["example_id"], "source": rows[i].get("source"), "rule": RULE,
                                    "detail": detail})
        found = [int(member[f.row]) for f in findings]
        for key, by in (("source", "by_source"), ("generator", "by_generator")):
            checked = Counter(rows[i].get(key) or "(none)" for i in member)
            hits = Counter(rows[i].get(key) or "(none)" for i in found)
            facts[by] = {k: {"checked": c, "found": hits.get(k, 0)} for k, c in sorted(checked.items())}
        facts["found"] = len(found)
        if found:
            gens = facts["by_generator"]
            ctx.warnings.append(
                f"{len(found)} rows pair an input with another answer class's answer ({'dropped' if cfg.mislabel_action == 'drop' else 'flagged'}; "
                "by generator: " + ", ".join(f"{g} {v['found']}/{v['checked']}" for g, v in gens.items() if v["found"]) + ")")
        return [r for r, d in zip(rows, drop, strict=True) if not d]
