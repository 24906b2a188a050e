"""Review statistics of a batch: verdict counts and rates, and inter-reviewer agreement (Cohen's kappa)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flywheel.labeling.decisions import resolve_decisions
from flywheel.labeling.store import VERDICTS, Decision


def cohens_kappa(pairs: Sequence[tuple[str, str]], labels: Sequence[str] = VERDICTS) -> float | None:
    """Cohen's kappa of two raters' labels (one pair per item); None without pairs."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[lab] * second[lab] for lab in set(labels) | set(first) | set(second)) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


@dataclass
class ReviewStats:
    items: int
    decided: int
    undecided: int
    verdicts: dict[str, int]  # resolved verdict per decided item
    fix_rate: float
    reject_rate: float
    double_reviewed: int
    agreement: float | None  # observed agreement on double-reviewed items
    kappa: float | None
    conflicts: int


def review_stats(items: Sequence[dict[str, Any]], decisions: Sequence[Decision]) -> ReviewStats:
    """Verdict counts and rates of a batch, and inter-reviewer agreement (Cohen's kappa over the first two
    reviews of every item reviewed twice)."""
    resolved = resolve_decisions(decisions)
    ids = {it["item_id"] for it in items}
    resolved = {k: v for k, v in resolved.items() if k in ids}
    counts = Counter(r.verdict for r in resolved.values())
    decided = len(resolved)
    by_item: dict[str, list[Decision]] = {}
    for d in sorted(decisions, key=lambda d: (d.created_at, d.reviewer)):
        by_item.setdefault(d.item_id, []).append(d)
    pairs = [(ds[0].verdict, ds[1].verdict) for ds in by_item.values() if len(ds) >= 2]
    return ReviewStats(
        items=len(items), decided=decided, undecided=len(items) - decided,
        verdicts={v: counts.get(v, 0) for v in VERDICTS},
        fix_rate=counts.get("fix", 0) / decided if decided else 0.0,
        reject_rate=counts.get("reject", 0) / decided if decided else 0.0,
        double_reviewed=len(pairs),
        agreement=(sum(a == b for a, b in pairs) / len(pairs)) if pairs else None,
        kappa=cohens_kappa(pairs), conflicts=sum(1 for r in resolved.values() if r.conflict),
    )
