"""Step 4b, mislabels: a question paired with another question's answer (confident learning).

The conflicts step sees only near-same *inputs* that disagree; a batch job that shuffled answers
pairs distinct questions with wrong answers and passes it. Here:

1. Answers are grouped into classes: the same normalised text (`core.text.shingle_form`), then a
   near-duplicate answer (MinHash Jaccard >= `mislabel_answer_threshold`) joins the class of the
   most frequent answer it is near.
2. Only classes of at least `mislabel_min_class_examples` rows take part; rows of smaller classes
   (most free-text answers are a class of one) are left alone and counted (`rows_in_small_classes`).
   Classes whose mean inputs are alike (similarity >= `mislabel_same_inputs_similarity`, see
   `same_input_classes`) answer the same questions with alternative replies (two phrasings of "I am
   Vicuna"): they count as one class.
3. A nearest-centroid classifier predicts the class from the input (the last user turn): L2-normalised
   TF-IDF over hashed character 3-5-grams, a class's centroid is the sum of its rows, the class
   probability a softmax of the cosines (temperature 0.05). Each row is scored leave-one-out (its
   own vector taken out of its class's centroid: the exact n-fold cross-validation of this model,
   cheap and seed-free).
4. Confident learning (Northcutt et al., JAIR 2021): a class's threshold is the mean probability its
   own rows give it. A row is mislabeled when the probability of its own class is below that class's
   threshold while the most probable class is another one and reaches its threshold.
5. Prune and refit once: the centroids are rebuilt without the rows the first fit found (shuffled
   answers pollute the centroids of the classes they were given) and the rows are scored again. In
   this second fit the predicted class needs `mislabel_confidence` (0.75) of its threshold: with many
   classes the softmax spreads, and a wrong row typical of its predicted class sits near, not above,
   that class's mean. A class more than two thirds of whose rows the first fit predicts elsewhere
   is no target (a class of mostly wrong rows breaks confident learning's premise; its own rows
   are still found). See benchmarks/mislabel.py for the recall and false positives behind these.

Rows with an answer a person fixed (`human_fixed`) train the centroids but are never found.
`mislabel_action` drops the rows found (default) or only flags them for review; either way the
reason names the class the input reads like, with one of its answers, and `ctx.facts["mislabel"]`
counts rows checked and found per source and per generator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.core.text import final_answer, input_match_key, last_user_text, shingle_form
from flywheel.curation.context import CurationContext, Step
from flywheel.curation.near_duplicates import (
    MinHasher,
    candidate_links,
    clusters_from_pairs,
    estimated_jaccard,
    exact_jaccard,
    shingle_hashes,
)

if TYPE_CHECKING:
    from scipy import sparse

RULE = "mislabeled_answer"
NGRAMS = (3, 4, 5)
FEATURES = 1 << 20
TEMPERATURE = 0.05
"""Softmax temperature over cosines (0-1): a cosine gap of 0.1 is odds of e^2."""
ANSWER_PREFIX = 200
UNRELIABLE_SHARE = 2 / 3
"""A class more of whose rows read like other classes is no target (demo: at most 1/2 with 29% planted)."""
_CELLS = 1 << 22  # rows x classes scored at once
_DENSE_CELLS = 1 << 25  # features x classes held as a dense array (128 MiB of float32)


def answer_classes(answers: Sequence[str], threshold: float, hasher: MinHasher) -> np.ndarray:
    """A class label (0..K-1, the most frequent class first) per answer.

    Equal normalised answers share a class. Distinct answers are then visited from the most frequent
    down; one joins the class of the first more frequent answer (a representative) whose character
    shingle Jaccard with it is >= `threshold` (checked directly, so A~B~C chains do not join A and C).
    Candidates are pairs whose first `ANSWER_PREFIX` characters have a MinHash Jaccard >= `threshold`
    (LSH; a canned reply is shorter, and signing whole free-text answers would cost more than the rest
    of the step), verified on the whole answers.
    """
    keys = [shingle_form(a) for a in answers]
    counts = Counter(keys)
    distinct = sorted(counts, key=lambda k: (-counts[k], k))
    rep = np.arange(len(distinct))
    if threshold < 1 and len(distinct) > 1:
        sig = hasher.signatures([d[:ANSWER_PREFIX] for d in distinct])
        pairs = candidate_links(sig, threshold)
        if len(pairs):
            pairs = pairs[estimated_jaccard(sig, pairs) >= threshold]
        near: dict[int, list[int]] = {}
        for i, j in pairs.tolist():  # i > j: j is the more frequent answer
            near.setdefault(i, []).append(j)
        for i in sorted(near):
            for r in sorted({int(rep[j]) for j in near[i]}):
                if exact_jaccard(distinct[r], distinct[i], hasher.shingle) >= threshold:
                    rep[i] = r
                    break
    of_key = {k: i for i, k in enumerate(distinct)}
    _, labels = np.unique(rep[[of_key[k] for k in keys]], return_inverse=True)
    return labels.astype(np.int64).reshape(-1)


def input_features(texts: Sequence[str]) -> sparse.csr_matrix:
    """One L2-normalised row per text: TF-IDF (sublinear TF) over hashed character 3-5-grams of
    its match key (`core.text.input_match_key`, padded with a space at both ends)."""
    from scipy import sparse  # imported on first use: the code location starts faster

    padded = [f" {input_match_key(t)} " for t in texts]
    n = len(padded)
    parts = []
    for k in NGRAMS:
        hashes, offsets = shingle_hashes(padded, k)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        parts.append(rows * FEATURES + (hashes % np.uint64(FEATURES)).astype(np.int64))
    keys, counts = np.unique(np.concatenate(parts), return_counts=True)
    rows, hashed = keys // FEATURES, keys % FEATURES
    df = np.bincount(hashed, minlength=FEATURES)
    cols = (np.cumsum(df > 0) - 1)[hashed]  # only the features that occur: columns 0..F-1
    values = (1.0 + np.log(counts)) * (np.log((1.0 + n) / (1.0 + df[hashed])) + 1.0)
    x = sparse.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n, int((df > 0).sum())))
    return _normalize_rows(x)


def _normalize_rows(x: sparse.csr_matrix) -> sparse.csr_matrix:
    from scipy import sparse  # imported on first use: the code location starts faster

    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return (sparse.diags((1.0 / np.maximum(norms, 1e-12)).astype(np.float32)) @ x).tocsr()


class CentroidModel:
    """Class centroids (sums of the rows' vectors, `exclude`d rows left out) scoring rows leave-one-out."""

    def __init__(self, x: sparse.csr_matrix, labels: np.ndarray, n_classes: int, exclude: np.ndarray) -> None:
        from scipy import sparse  # imported on first use: the code location starts faster

        n = len(labels)
        self.x, self.labels = x, labels
        self.inside = ~exclude
        weights = self.inside.astype(np.float32)
        sums = (sparse.csr_matrix((weights, (labels, np.arange(n))), shape=(n_classes, n)) @ x).T.tocsr()
        self.sq = np.asarray(sums.multiply(sums).sum(axis=0), dtype=np.float64).ravel()
        # features x classes: dense while small (sparse is slower once most features touch most classes)
        self.sums = sums.toarray() if sums.shape[0] * sums.shape[1] <= _DENSE_CELLS else sums
        self.self_sq = np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel()

    def probabilities(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), K) class probabilities of rows `idx`, each scored without its own vector."""
        product = self.x[idx] @ self.sums
        dots = np.asarray(product if isinstance(product, np.ndarray) else product.todense(), dtype=np.float64)
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


class Fit:
    """One leave-one-out fit: each row's probability of its own class and its most probable class, and
    each class's confident-learning threshold (the mean probability its own rows give it)."""

    def __init__(self, x: sparse.csr_matrix, labels: np.ndarray, n_classes: int, exclude: np.ndarray) -> None:
        self.model, self.labels = CentroidModel(x, labels, n_classes, exclude), labels
        n = len(labels)
        self.chunk = max(1, _CELLS // max(n_classes, 1))
        self.p_own, self.top = np.empty(n), np.empty(n, dtype=np.int64)
        for idx in self._chunks(np.arange(n)):
            probs = self.model.probabilities(idx)
            self.p_own[idx] = probs[np.arange(len(idx)), labels[idx]]
            self.top[idx] = probs.argmax(axis=1)
        counts = np.bincount(labels, minlength=n_classes)
        self.thresholds = np.bincount(labels, weights=self.p_own, minlength=n_classes) / np.maximum(counts, 1)

    def _chunks(self, rows: np.ndarray) -> list[np.ndarray]:
        return [rows[start:start + self.chunk] for start in range(0, len(rows), self.chunk)]

    def mislabels(self, share: float = 1.0, targets: np.ndarray | None = None) -> list[MislabelFinding]:
        """Rows whose own class's probability is below that class's threshold while the most probable
        class is another one and reaches `share` of its threshold. With `targets` (a mask of reliable
        classes) the most probable class must be one of them, and the rows of the other classes need
        not be below their own class's threshold (it means nothing there)."""
        labels, t = self.labels, self.thresholds
        candidate = (self.top != labels) & (self.p_own < t[labels])
        if targets is not None:
            below_or_unreliable = (self.p_own < t[labels]) | ~targets[labels]
            candidate = (self.top != labels) & targets[self.top] & below_or_unreliable
        out = []
        for idx in self._chunks(np.flatnonzero(candidate)):
            p_top = self.model.probabilities(idx)[np.arange(len(idx)), self.top[idx]]
            for i, p in zip(idx.tolist(), p_top.tolist(), strict=True):
                if p >= share * t[self.top[i]]:
                    out.append(MislabelFinding(i, int(labels[i]), int(self.top[i]), float(self.p_own[i]), p))
        return out


def same_input_classes(x: sparse.csr_matrix, labels: np.ndarray, n_classes: int,
                       min_similarity: float) -> np.ndarray:
    """Per class, the class it is one with (the smallest index of its group): classes whose mean inputs
    are as alike as `min_similarity` answer the same questions with alternative replies (two phrasings
    of "I am Vicuna"), so no row of one is a mislabel of the other.

    The similarity of classes A and B compares their mean input vectors without the rows' self-
    similarity: the mean dot product across the classes over the mean of the mean within-A and
    within-B dot products (each over distinct pairs of rows), i.e. 1 - |mu_A - mu_B|^2 / (|mu_A|^2 +
    |mu_B|^2) estimated without bias. Unlike the centroids' cosine it does not shrink with class size
    (halves of one class score near 1 at any size: 0.7-1.1 for halves of 12 demo rows, distinct demo
    intents at most 0.65; 0.94 for two deduplicated ShareGPT identity replies whose centroids' cosine
    is 0.74), and a diffuse class (questions of many kinds) is not like a tight one it overlaps.
    """
    from scipy import sparse  # imported on first use: the code location starts faster

    n = np.bincount(labels, minlength=n_classes).astype(np.float64)
    sums = (sparse.csr_matrix((np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
                              shape=(n_classes, len(labels))) @ x).tocsr()
    row_sq = np.asarray(x.multiply(x).sum(axis=1)).ravel()
    self_dots = np.bincount(labels, weights=row_sq, minlength=n_classes)
    within = (np.asarray(sums.multiply(sums).sum(axis=1)).ravel() - self_dots) / np.maximum(n * (n - 1), 1)
    pairs = []
    chunk = max(1, _CELLS // max(n_classes, 1))
    for start in range(0, n_classes, chunk):
        stop = min(n_classes, start + chunk)
        cross = np.asarray((sums[start:stop] @ sums.T).todense()) / np.outer(n[start:stop], n)
        sim = 2 * cross / np.maximum(within[start:stop, None] + within[None, :], 1e-12)
        i, j = np.nonzero((sim >= min_similarity) & (within[start:stop, None] > 0) & (within[None, :] > 0))
        i += start
        pairs.append(np.stack([j[j < i], i[j < i]], axis=1))
    return clusters_from_pairs(n_classes, np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64))


def find_mislabels(x: sparse.csr_matrix, labels: np.ndarray, n_classes: int, share: float = 1.0,
                   protected: np.ndarray | None = None) -> list[MislabelFinding]:
    """Fit (confident learning), prune the rows found from the centroids, refit: the second fit's
    findings, where the predicted class needs `share` of its threshold and may not be a class more
    than `UNRELIABLE_SHARE` of whose rows the first fit predicts elsewhere. Confident learning assumes
    most of a class's labels are right: a class of mostly wrong rows has a threshold near 0 and a
    centroid of stray questions, and would claim any row sharing a phrase with one of them; its own
    rows are found whenever a reliable class is the most probable. `protected` rows are pruned like
    the others but never found."""
    first = Fit(x, labels, n_classes, np.zeros(len(labels), dtype=bool))
    exclude = np.zeros(len(labels), dtype=bool)
    exclude[[f.row for f in first.mislabels()]] = True
    elsewhere = np.bincount(labels[first.top != labels], minlength=n_classes)
    reliable = elsewhere <= UNRELIABLE_SHARE * np.bincount(labels, minlength=n_classes)
    found = Fit(x, labels, n_classes, exclude).mislabels(share, reliable)
    return [f for f in found if protected is None or not protected[f.row]]


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
            "rows_in_small_classes": len(rows) - int(len(member)), "found": 0,
            "by_source": {}, "by_generator": {},
        }
        ctx.facts["mislabel"] = facts
        if len(big) < 2:
            facts["skipped"] = (f"{len(big)} answer class(es) of at least {cfg.mislabel_min_class_examples} "
                                "rows; 2 needed")
            return rows
        x = input_features([last_user_text(rows[i]["messages"]) for i in member])
        of_big = np.searchsorted(big, labels[member])
        groups = same_input_classes(x, of_big, len(big), cfg.mislabel_same_inputs_similarity)
        heads, merged = np.unique(groups, return_inverse=True)  # heads: each group's first (largest) class
        local = merged.reshape(-1)[of_big]
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
                ctx.flagged.append({"example_id": rows[i]["example_id"], "source": rows[i].get("source"),
                                    "rule": RULE, "detail": detail})
        found = [int(member[f.row]) for f in findings]
        for key, by in (("source", "by_source"), ("generator", "by_generator")):
            checked = Counter(rows[i].get(key) or "(none)" for i in member)
            hits = Counter(rows[i].get(key) or "(none)" for i in found)
            facts[by] = {k: {"checked": c, "found": hits.get(k, 0)} for k, c in sorted(checked.items())}
        facts["found"] = len(found)
        if found:
            done = "dropped" if cfg.mislabel_action == "drop" else "flagged"
            gens = ", ".join(f"{g} {v['found']}/{v['checked']}"
                             for g, v in facts["by_generator"].items() if v["found"])
            ctx.warnings.append(f"{len(found)} rows pair an input with another answer class's answer "
                                f"({done}; found/checked by generator: {gens})")
        return [r for r, d in zip(rows, drop, strict=True) if not d]
