"""Step 5, decontamination: no training example may share a word n-gram, a near-copy of an input or
a near-duplicate input with any item of the fixed eval set.

Three rules, because eval items come in every length: a word n-gram (`decontamination_ngram`) of an
eval input anywhere in a training conversation (long items, quoted or not); a training user turn within
a few character edits of an eval input (`eval_near_copies`: short items, typo'd copies); and an input
whose MinHash Jaccard with an eval input is high (`near_duplicate_threshold`: reworded long items).
`eval_near_copies` is also the training-time leak check (`flywheel.training.data.find_eval_leaks`,
which the gate's re-check calls): one rule for what leaks an eval item.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flywheel.config import CurationConfig
from flywheel.core.text import input_match_key, last_user_text, shingle_form
from flywheel.curation.context import CurationContext, Step, input_text
from flywheel.curation.near_duplicates import MinHasher, band_keys, lsh_params, near_copies

_WORD = re.compile(r"\w+")


def _conversation_words(messages: Sequence[dict[str, str]], roles: tuple[str, ...] = ("user", "assistant", "tool")) -> list[str]:
    return _WORD.findall(" ".join(m["content"] for m in messages if m["role"] in roles).lower())


def _ngram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """Rolling 64-bit keys of every n-gram of `ids`; n-grams touching a 0 (unknown word / separator) get key 0."""
    if len(ids) < n:
        return np.zeros(0, dtype=np.uint64)
    m = len(ids) - n + 1
    u = ids.astype(np.uint64)
    key = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        key = key * np.uint64(1_000_003) + u[j : j + m]
    zeros = np.concatenate([[0], np.cumsum(ids == 0)])
    has_zero = (zeros[n:] - zeros[:-n]) > 0
    key[has_zero] = 0
    return key


@dataclass(frozen=True)
class EvalCopy:
    """A training row whose user turn `text` is `edits` character edits from eval item `eval_row`'s input."""

    train_row: int
    eval_row: int
    edits: int
    text: str


def edit_budget(eval_key: str, cfg: CurationConfig) -> int:
    """How many character edits from a normalised eval input a training input may be and still copy it:
    `decontamination_max_edits`, at most `decontamination_max_edit_share` of the input's characters."""
    return min(cfg.decontamination_max_edits, int(len(eval_key) * cfg.decontamination_max_edit_share))


def eval_near_copies(train_messages: Sequence[Sequence[dict[str, Any]]], eval_messages: Sequence[Sequence[dict[str, Any]]],
                     cfg: CurationConfig | None = None) -> list[EvalCopy]:
    """Training rows with a user turn whose `input_match_key` is within `edit_budget` character edits of
    an eval item's input (its last user turn); 0 edits is the same input up to case, punctuation and
    spacing. One per row, the nearest eval item (the first on a tie), in row order."""
    cfg = cfg or CurationConfig()
    eval_keys = [input_match_key(last_user_text(m)) for m in eval_messages]
    turns: list[str] = []
    owners: list[int] = []
    for i, msgs in enumerate(train_messages):
        for m in msgs:
            if m.get("role") == "user" and m.get("content"):
                turns.append(m["content"])
                owners.append(i)
    keys = [input_match_key(t) for t in turns]
    best: dict[int, tuple[int, int, int]] = {}
    for t, j, edits in near_copies(keys, eval_keys, [edit_budget(k, cfg) for k in eval_keys]):
        row = owners[t]
        if row not in best or (edits, j) < best[row][:2]:
            best[row] = (edits, j, t)
    return [EvalCopy(row, j, edits, turns[t]) for row, (edits, j, t) in sorted(best.items())]


def contamination(rows: Sequence[dict[str, Any]], eval_rows: Sequence[dict[str, Any]], cfg: CurationConfig,
                  hasher: MinHasher, signatures: np.ndarray | None = None) -> dict[int, tuple[str, str]]:
    """Rows sharing a word n-gram (`decontamination_ngram`, normalized), a near-copy of an input
    (`eval_near_copies`) or a near-duplicate input (estimated Jaccard >= near_duplicate_threshold) with
    any eval item: {row index: (reason, detail)}.

    The n-grams are those of the eval items' inputs (user turns), looked for anywhere in a training
    conversation: an eval question quoted in a training answer still leaks it, while a canned answer
    that the task legitimately gives to many different questions does not."""
    n = cfg.decontamination_ngram
    found: dict[int, tuple[str, str]] = {}
    if not rows or not eval_rows:
        return found
    vocab: dict[str, int] = {}
    eval_keys: dict[int, str] = {}
    for e in eval_rows:
        ids = np.array([vocab.setdefault(w, len(vocab) + 1) for w in _conversation_words(e["messages"], ("user",))], dtype=np.int64)
        for k in _ngram_keys(ids, n).tolist():
            eval_keys.setdefault(k, e.get("example_id") or "")
    if eval_keys:
        eval_set = np.fromiter(eval_keys, dtype=np.uint64)
        # all rows at once: word ids (0 = a word the eval set never uses), rows separated by a 0
        flat: list[int] = []
        starts = []
        for r in rows:
            starts.append(len(flat))
            flat.extend(vocab.get(w, 0) for w in _conversation_words(r["messages"]))
            flat.append(0)
        keys = _ngram_keys(np.array(flat, dtype=np.int64), n)
        hits = np.flatnonzero(np.isin(keys, eval_set) & (keys != 0))
        owners = np.searchsorted(np.array(starts, dtype=np.int64), hits, side="right") - 1
        for pos, i in zip(hits.tolist(), owners.tolist(), strict=True):
            if i not in found:
                found[i] = ("eval_ngram_overlap", f"shares a {n}-gram with eval item {eval_keys[int(keys[pos])]}")
    for c in eval_near_copies([r["messages"] for r in rows], [e["messages"] for e in eval_rows], cfg):
        if c.train_row not in found:
            how = "the same input as" if c.edits == 0 else f"{c.edits} character edit(s) from"
            found[c.train_row] = ("eval_near_copy", f"user turn {c.text[:80]!r} is {how} eval item "
                                                    f"{eval_rows[c.eval_row].get('example_id')}")
    # near-duplicate inputs: band keys of the eval inputs looked up for every row, then verified
    sig = signatures if signatures is not None else hasher.signatures([shingle_form(input_text(r["messages"])) for r in rows])
    esig = hasher.signatures([shingle_form(input_text(e["messages"])) for e in eval_rows])
    bands, width = lsh_params(cfg.near_duplicate_threshold, sig.shape[1])
    rk, ek = band_keys(sig, bands, width), band_keys(esig, bands, width)
    candidates: set[tuple[int, int]] = set()
    for b in range(bands):
        lookup: dict[int, list[int]] = {}
        for j, k in enumerate(ek[:, b].tolist()):
            lookup.setdefault(k, []).append(j)
        for i in np.flatnonzero(np.isin(rk[:, b], ek[:, b])).tolist():
            for j in lookup[int(rk[i, b])]:
                candidates.add((i, j))
    for i, j in sorted(candidates):
        sim = float((sig[i] == esig[j]).mean())
        if sim >= cfg.near_duplicate_threshold and i not in found:
            found[i] = ("eval_near_duplicate_input", f"input ~{sim:.2f} Jaccard to eval item {eval_rows[j].get('example_id')}")
    return found


class DecontaminationStep(Step):
    """No training example may share an n-gram or a near-duplicate input with the fixed eval set."""

    name = "decontamination"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        if ctx.eval_items.rows is None:
            ctx.facts["eval_set_missing"] = ctx.eval_items.path or "fixed eval set"
            ctx.warnings.append(f"fixed eval set not found ({ctx.eval_items.path}): decontamination could not run")
            return rows
        found = contamination(rows, ctx.eval_items.rows, ctx.config, ctx.hasher(), ctx.input_signatures(rows))
        for i, (reason, detail) in found.items():
            ctx.drop(rows[i], self.name, reason, detail)
        ctx.facts["eval_items"] = len(ctx.eval_items.rows)
        return [r for i, r in enumerate(rows) if i not in found]
