"""Weekly batch selection: corrections first, then negatives, then low-confidence outputs, then a seeded
control sample of positive / no-signal traffic; near-identical inputs collapsed (rapidfuzz); items
reviewed in an earlier batch left out; capped with per-kind quotas (unused quota flows on).

One item per interaction id: an id captured again (on another day of the week) keeps its latest row and
the others are counted (`duplicate_id_rows`); a row whose id the decision store cannot hold (over
MAX_ID_CHARS, NUL, lone surrogate) is left out and counted (`unusable_id_rows`), so one row never fails a week.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

from flywheel.config import LabelingConfig, SignalWeights
from flywheel.labeling.candidates import KINDS, candidate_kind, input_key
from flywheel.labeling.store import id_problem


@dataclass
class BatchSelection:
    """A selected batch and the counts of every step."""

    batch_id: str
    items: list[dict[str, Any]]
    candidates: dict[str, int] = field(default_factory=dict)  # per kind, before anything is left out
    already_reviewed: dict[str, int] = field(default_factory=dict)
    collapsed: dict[str, int] = field(default_factory=dict)  # near-duplicates folded into another item
    unique: dict[str, int] = field(default_factory=dict)  # distinct items available per kind
    quota: dict[str, int] = field(default_factory=dict)
    selected: dict[str, int] = field(default_factory=dict)
    dropped_by_cap: dict[str, int] = field(default_factory=dict)
    duplicate_id_rows: int = 0  # rows of an interaction id seen again (the latest row is kept)
    unusable_id_rows: int = 0  # rows whose id the decision store cannot hold

    def metadata(self) -> dict[str, Any]:
        return {
            "candidates": self.candidates, "already_reviewed": self.already_reviewed, "collapsed": self.collapsed,
            "unique": self.unique, "quota": self.quota, "selected": self.selected,
            "dropped_by_cap": self.dropped_by_cap, "items": len(self.items),
            "duplicate_id_rows": self.duplicate_id_rows, "unusable_id_rows": self.unusable_id_rows,
        }


class _Groups:
    """Near-identical inputs folded together: exact key first, then rapidfuzz ratio >= cutoff."""

    def __init__(self, similarity: float) -> None:
        self.cutoff = similarity * 100.0
        self.by_key: dict[str, int] = {}
        self.keys: list[str] = []
        self.members: list[list[dict[str, Any]]] = []

    def find(self, key: str) -> int | None:
        if key in self.by_key:
            return self.by_key[key]
        if not self.keys or self.cutoff >= 100:  # similarity 1.0: identical keys only
            return None
        hit = process.extractOne(key, self.keys, scorer=fuzz.ratio, score_cutoff=self.cutoff)
        return hit[2] if hit else None

    def add(self, key: str, row: dict[str, Any], group: int | None) -> int:
        if group is None:
            group = len(self.members)
            self.keys.append(key)
            self.members.append([])
        self.by_key.setdefault(key, group)
        self.members[group].append(row)
        return group


def allot_quotas(size: int, shares: dict[str, float], available: dict[str, int]) -> dict[str, int]:
    """Slots per kind: each kind gets up to its share of `size`; unused slots flow to the kinds
    (in priority order) that still have candidates."""
    take = {k: min(available.get(k, 0), int(size * shares.get(k, 0.0))) for k in KINDS}
    over = sum(take.values()) - size
    for k in reversed(KINDS):  # shares summing above 1: the later kinds give way
        if over <= 0:
            break
        cut = min(over, take[k])
        take[k] -= cut
        over -= cut
    left = size - sum(take.values())
    for k in KINDS:
        extra = min(left, available.get(k, 0) - take[k])
        take[k] += extra
        left -= extra
    return take


def _item_from_row(row: dict[str, Any], kind: str, key: str, weights: SignalWeights) -> dict[str, Any]:
    weight = row.get("weight")
    if weight is None:
        weight = float(getattr(weights, row.get("signal") or "none", weights.none))
    conf = row.get("confidence")
    return {
        "item_id": row["interaction_id"],
        "kind": kind,
        "interaction_id": row["interaction_id"],
        "ts": row.get("ts"),
        "session_id": row.get("session_id"),
        "model_version": row.get("model_version"),
        "messages": [{"role": m["role"], "content": m["content"]} for m in (row.get("messages") or [])],
        "input_text": row.get("input_text") or "",
        "output": row.get("output") or "",
        "correction_text": row.get("correction_text"),
        "signal": row.get("signal") or "none",
        "evidence": row.get("evidence"),
        "weight": float(weight),
        "confidence": None if conf is None or conf != conf else float(conf),
        "duplicate_count": 1,
        "duplicate_ids": [],
        "input_key": key,
        "source": None,
        "lineage": None,
    }


def _latest_per_id(rows: Iterable[dict[str, Any]], sel: BatchSelection) -> list[dict[str, Any]]:
    """One row per usable interaction id: the latest (by ts, then output and input for a tie); the
    rows left out are counted in `sel`."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        iid = row.get("interaction_id")
        if id_problem(iid) is not None:
            sel.unusable_id_rows += 1
            continue
        prev = latest.get(iid)
        if prev is not None:
            sel.duplicate_id_rows += 1
            rank = (row.get("ts") or "", row.get("output") or "", row.get("input_text") or "")
            if rank <= (prev.get("ts") or "", prev.get("output") or "", prev.get("input_text") or ""):
                continue
        latest[iid] = row
    return list(latest.values())


def select_batch(
    batch_id: str,
    rows: Iterable[dict[str, Any]],
    config: LabelingConfig,
    *,
    rubric: str = "",
    weights: SignalWeights | None = None,
    reviewed_ids: set[str] | None = None,
    reviewed_inputs: set[str] | None = None,
) -> BatchSelection:
    """Choose a review batch from interactions with signals (see the module docstring for the rules).

    Deterministic for the same rows, config (seed) and reviewed sets. Within a kind, the most frequent
    inputs (largest duplicate groups) come first, then the oldest. An interaction id on several rows
    (captured on two days) is one candidate: its latest row.
    """
    weights = weights or SignalWeights()
    reviewed_ids = reviewed_ids or set()
    reviewed_inputs = reviewed_inputs or set()
    sel = BatchSelection(batch_id=batch_id, items=[])
    sel.candidates = dict.fromkeys(KINDS, 0)
    sel.already_reviewed = dict.fromkeys(KINDS, 0)
    sel.collapsed = dict.fromkeys(KINDS, 0)

    pools: dict[str, list[tuple[str, dict[str, Any]]]] = {k: [] for k in KINDS}
    for row in _latest_per_id(rows, sel):
        kind = candidate_kind(row, config.low_confidence_threshold)
        sel.candidates[kind] += 1
        key = input_key(row.get("messages"), row.get("input_text") or "")
        if row["interaction_id"] in reviewed_ids or key in reviewed_inputs:
            sel.already_reviewed[kind] += 1
            continue
        pools[kind].append((key, row))

    groups = _Groups(config.near_duplicate_similarity)
    group_kind: list[str] = []
    for kind in KINDS[:-1]:  # every priority candidate is grouped, in priority order
        for key, row in sorted(pools[kind], key=lambda kr: (kr[1].get("ts") or "", kr[1]["interaction_id"])):
            g = groups.find(key)
            if g is not None:
                sel.collapsed[kind] += 1
            else:
                group_kind.append(kind)
            groups.add(key, row, g)

    def ranked(kind: str) -> list[int]:
        ids = [g for g, k in enumerate(group_kind) if k == kind]
        return sorted(ids, key=lambda g: (-len(groups.members[g]), groups.members[g][0].get("ts") or "",
                                          groups.members[g][0]["interaction_id"]))

    priority = {k: ranked(k) for k in KINDS[:-1]}
    sel.unique = {k: len(priority[k]) for k in KINDS[:-1]}
    control_pool = pools["control"]
    available = dict(sel.unique, control=len(control_pool))
    slots = allot_quotas(config.batch_size, config.quotas.model_dump(), available)
    sel.quota = {k: int(config.batch_size * getattr(config.quotas, k)) for k in KINDS}

    # the control sample: a seeded shuffle drawn until its slots are filled; near-duplicates of an
    # item already in the batch are folded into it (not counted as new)
    rng = random.Random(f"{config.seed}:{batch_id}")
    shuffled = sorted(control_pool, key=lambda kr: kr[1]["interaction_id"])
    rng.shuffle(shuffled)
    control_groups: list[int] = []
    examined = 0
    for key, row in shuffled:
        if len(control_groups) >= slots["control"]:
            break
        examined += 1
        g = groups.find(key)
        if g is not None:
            sel.collapsed["control"] += 1
            if group_kind[g] == "control":
                groups.add(key, row, g)
            continue
        g = groups.add(key, row, None)
        group_kind.append("control")
        control_groups.append(g)
    sel.unique["control"] = len(control_groups) + (len(shuffled) - examined)
    shortfall = slots["control"] - len(control_groups)
    slots["control"] = len(control_groups)
    for k in KINDS[:-1]:  # control slots it could not fill flow back
        extra = min(shortfall, len(priority[k]) - slots[k])
        slots[k] += extra
        shortfall -= extra

    chosen = [(k, g) for k in KINDS[:-1] for g in priority[k][: slots[k]]] + [("control", g) for g in control_groups]
    for kind, g in chosen:
        members = groups.members[g]
        item = _item_from_row(members[0], kind, groups.keys[g], weights)
        item["duplicate_count"] = len(members)
        item["duplicate_ids"] = [m["interaction_id"] for m in members[1:]]
        item["batch_id"] = batch_id
        item["position"] = len(sel.items)
        item["rubric"] = rubric
        sel.items.append(item)
    sel.selected = {k: sum(1 for kk, _ in chosen if kk == k) for k in KINDS}
    sel.dropped_by_cap = {k: sel.unique[k] - sel.selected[k] for k in KINDS}
    return sel
