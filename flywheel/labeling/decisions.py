"""Review decisions: one at a time (`record_decision`), by file (`export_batch` / `import_decisions`),
and resolved to one verdict per item when reviewers disagree (`resolve_decisions`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.core.errors import InputError
from flywheel.core.storage import write_jsonl
from flywheel.labeling.store import Decision, ReviewError, ReviewStore

# Conflicting verdicts of several reviewers: the most cautious one wins.
VERDICT_PRECEDENCE: dict[str, int] = {"reject": 3, "fix": 2, "pass": 1}


class DecisionFileError(InputError):
    """A decisions file that cannot be imported; `errors` lists every bad line (nothing was applied)."""

    def __init__(self, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        shown = "\n  ".join(errors[:20]) + (f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else "")
        super().__init__(f"{path}: {len(errors)} bad line(s), nothing applied:\n  {shown}")


# --- one decision, and decisions by file ---------------------------------------------------------
def record_decision(
    store: ReviewStore,
    batch_id: str,
    item_id: str,
    reviewer: str,
    verdict: str,
    text: str | None = None,
    reason: str | None = None,
) -> Decision:
    """Validate and upsert one reviewer's decision on one item (raises `ReviewError` with the reason)."""
    row = store.validate_decision(batch_id, item_id, reviewer, verdict, text, reason)
    store.record_decisions([row])
    return next(d for d in store.decisions(batch_id, reviewer=row["reviewer"]) if d.item_id == item_id)


def export_rows(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch items as JSONL rows for reviewing by file: fill in verdict (pass | fix | reject), text, reason."""
    keep = ("batch_id", "item_id", "position", "kind", "interaction_id", "messages", "input_text", "output",
            "correction_text", "signal", "evidence", "confidence", "duplicate_count", "source", "rubric")
    return [{**{k: it.get(k) for k in keep}, "verdict": None, "text": None, "reason": None} for it in items]


def export_batch(store: ReviewStore, batch_id: str, target: str | Path) -> Path:
    """Write a batch as JSONL for reviewing by file."""
    info = store.batch(batch_id)
    items = store.items(batch_id)
    for it in items:
        it["rubric"] = it.get("rubric") or info.rubric
        it["batch_id"] = batch_id
    return write_jsonl(export_rows(items), target)


@dataclass
class ImportReport:
    path: str
    lines: int
    applied: int
    skipped_undecided: int
    batches: list[str]


def import_decisions(store: ReviewStore, path: str | Path, reviewer: str, batch_id: str | None = None) -> ImportReport:
    """Read a decisions JSONL (an edited export) and apply it for `reviewer`: every line is validated
    first (unknown item, bad verdict, fix without text, invalid JSON ...); one bad line applies nothing
    (`DecisionFileError` names each bad line); otherwise all decisions go in one transaction.
    Lines without a verdict are left undecided."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DecisionFileError(str(p), [f"cannot read the file: {exc}"]) from None
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    known: dict[str, set[str] | None] = {}
    skipped = 0
    n_lines = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        n_lines += 1
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(rec, dict):
            errors.append(f"line {lineno}: expected a JSON object, got {type(rec).__name__}")
            continue
        bid = rec.get("batch_id") or batch_id
        if batch_id is not None and rec.get("batch_id") not in (None, batch_id):
            errors.append(f"line {lineno}: batch {rec.get('batch_id')!r} is not the batch being imported ({batch_id!r})")
            continue
        if not isinstance(bid, str):
            errors.append(f"line {lineno}: no batch_id (give --batch or keep the exported batch_id)")
            continue
        if bid not in known:
            try:
                info = store.batch(bid)
                known[bid] = None if info.closed_at is not None else set(store.item_ids(bid))
            except ReviewError:
                known[bid] = set()
                errors.append(f"line {lineno}: batch {bid!r} not found in the decision store")
                continue
        items = known[bid]
        if items is None:
            errors.append(f"line {lineno}: batch {bid!r} is closed")
            continue
        if not items:
            errors.append(f"line {lineno}: batch {bid!r} not found in the decision store")
            continue
        verdict = rec.get("verdict")
        if verdict is None or verdict == "":
            skipped += 1
            continue
        try:
            rows.append(store.validate_decision(bid, rec.get("item_id"), reviewer, verdict, rec.get("text"),
                                                rec.get("reason"), known_items=items))
        except ReviewError as exc:
            errors.append(f"line {lineno}: {exc}")
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        k = (row["batch_id"], row["item_id"])
        seen[k] = seen.get(k, 0) + 1
    errors += [f"item {i!r} of batch {b!r} appears {n} times" for (b, i), n in seen.items() if n > 1]
    if errors:
        raise DecisionFileError(str(p), errors)
    store.record_decisions(rows)
    return ImportReport(path=str(p), lines=n_lines, applied=len(rows), skipped_undecided=skipped,
                        batches=sorted({r["batch_id"] for r in rows}))


# --- one verdict per item --------------------------------------------------------------------------
@dataclass(frozen=True)
class ResolvedDecision:
    """The verdict an item gets after every reviewer has spoken."""

    item_id: str
    verdict: str
    text: str | None
    reason: str | None
    reviewer: str  # whose decision was taken
    reviewers: tuple[str, ...]
    conflict: bool


def resolve_decisions(decisions: Iterable[Decision]) -> dict[str, ResolvedDecision]:
    """One verdict per item. Reviewers who disagree: the most cautious verdict wins
    (reject > fix > pass: a doubt about an example keeps it out, a written fix beats a pass);
    among decisions with that verdict the most recently updated wins (ties: reviewer name)."""
    by_item: dict[str, list[Decision]] = {}
    for d in decisions:
        by_item.setdefault(d.item_id, []).append(d)
    out: dict[str, ResolvedDecision] = {}
    for item_id, ds in by_item.items():
        best = max(ds, key=lambda d: (VERDICT_PRECEDENCE[d.verdict], d.updated_at, d.reviewer))
        out[item_id] = ResolvedDecision(
            item_id=item_id, verdict=best.verdict, text=best.text, reason=best.reason, reviewer=best.reviewer,
            reviewers=tuple(sorted({d.reviewer for d in ds})), conflict=len({d.verdict for d in ds}) > 1,
        )
    return out
