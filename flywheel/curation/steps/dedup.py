"""Step 3, duplicates: exact copies, then near-duplicate inputs whose answers agree.

Exact copies share the whole conversation compared lower-cased with spaces collapsed
(`core.text.shingle_form`; punctuation stays, it is content in answers). Near-same inputs are
MinHash/LSH candidates (`curation.near_duplicates`) verified by estimated Jaccard. In both cases the
most trusted copy is kept (human-fixed > real > human > distilled > synthetic, then weight).
`near_input_groups` and `answer_similarity` are shared with the conflicts step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from rapidfuzz import fuzz

from flywheel.core.text import final_answer, shingle_form
from flywheel.curation.context import CurationContext, Step, keep_order
from flywheel.curation.near_duplicates import candidate_links, clusters_from_pairs, estimated_jaccard


def exact_key(messages: Sequence[dict[str, str]]) -> str:
    """Hash of the normalized whole conversation (roles and lower-cased, whitespace-collapsed text)."""
    canon = "\x1e".join(f"{m['role']}\x1f{shingle_form(m['content'])}" for m in messages)
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=12).hexdigest()


def answer_similarity(a: str, b: str) -> float:
    """rapidfuzz ratio (0-1) of the normalized answers."""
    return fuzz.ratio(shingle_form(a), shingle_form(b)) / 100.0


def _groups(labels: Sequence[Any]) -> list[list[int]]:
    by: dict[Any, list[int]] = {}
    for i, lab in enumerate(labels):
        by.setdefault(lab, []).append(i)
    return [g for g in by.values() if len(g) > 1]


def near_input_groups(rows: Sequence[dict[str, Any]], ctx: CurationContext) -> list[tuple[int, list[tuple[int, float]]]]:
    """Rows with near-same inputs (MinHash/LSH candidates, estimated Jaccard >= threshold).

    Within each LSH cluster, rows are visited from the most trusted down; a row joins the first
    representative whose input it is near (checked directly, so A~B~C chains do not join A and C),
    otherwise it becomes a representative. Returns (representative, [(member, input similarity)]).
    """
    if len(rows) < 2:
        return []
    threshold = ctx.config.near_duplicate_threshold
    sig = ctx.input_signatures(rows)
    pairs = candidate_links(sig, threshold)
    if len(pairs):
        pairs = pairs[estimated_jaccard(sig, pairs) >= threshold]
    labels = clusters_from_pairs(len(rows), pairs)
    out = []
    for group in _groups(labels.tolist()):
        group.sort(key=lambda i: keep_order(rows[i]))
        reps: list[int] = []
        members: dict[int, list[tuple[int, float]]] = {}
        for i in group:
            if reps:
                sims = (sig[reps] == sig[i]).mean(axis=1)
                best = int(np.argmax(sims >= threshold)) if (sims >= threshold).any() else -1
                if best >= 0:
                    members[reps[best]].append((i, float(sims[best])))
                    continue
            reps.append(i)
            members[i] = []
        out.extend((r, m) for r, m in members.items() if m)
    return out


class DedupStep(Step):
    """Exact duplicates, then near-duplicate inputs whose answers agree; the most trusted copy stays."""

    name = "dedup"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        drop = np.zeros(len(rows), dtype=bool)
        for group in _groups([exact_key(r["messages"]) for r in rows]):
            keeper = min(group, key=lambda i: keep_order(rows[i]))
            for i in group:
                if i != keeper:
                    drop[i] = True
                    ctx.drop(rows[i], self.name, "exact_duplicate", "same normalized conversation", rows[keeper]["example_id"])
        rows = [r for r, d in zip(rows, drop, strict=True) if not d]
        drop = np.zeros(len(rows), dtype=bool)
        limit = ctx.config.conflict_answer_similarity
        groups = near_input_groups(rows, ctx)
        for keeper, members in groups:
            kept_answer = final_answer(rows[keeper]["messages"])
            for i, input_sim in members:
                sim = answer_similarity(final_answer(rows[i]["messages"]), kept_answer)
                if sim >= limit:
                    drop[i] = True
                    ctx.drop(rows[i], self.name, "near_duplicate", f"input ~{input_sim:.2f} Jaccard, answer similarity {sim:.2f}",
                             rows[keeper]["example_id"])
        ctx.facts["near_duplicate_groups"] = len(groups)
        return [r for r, d in zip(rows, drop, strict=True) if not d]
