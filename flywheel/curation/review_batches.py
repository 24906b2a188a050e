"""A dataset version's review batches in the labeling decision store.

- `dataset-<version>`: the seeded review sample (the rubric's five questions, by people);
- `conflicts-<version>`: the examples dropped as conflicting, each beside the answer kept instead; the
  verdicts of every conflict batch are read back (`read_conflict_verdicts`) and applied to the next
  version built (`curation.steps.conflict_verdicts`).

Both are built from labeling's generic review items (`labeling.batches.review_item`) and registered
with `ReviewStore.register_batch`; a batch that exists is kept (a rebuild of the same version keeps
its batches and their decisions).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flywheel.curation.context import ConflictVerdict, RowVerdict
from flywheel.curation.versions import DatasetVersion
from flywheel.labeling.batches import create_sample_batch, review_item
from flywheel.labeling.decisions import resolve_decisions
from flywheel.labeling.store import ReviewError, ReviewStore

CONFLICT_KIND = "conflict"
CONFLICT_HOW_TO = ("pass: keep both answers; fix: your answer replaces both; reject: keep only the kept answer "
                   "(a reject reason starting with 'both' drops both)")


def review_sample_batch_id(version: str) -> str:
    return f"dataset-{version}"


def conflict_batch_id(version: str) -> str:
    return f"conflicts-{version}"


def register_review_sample(db_url: str, dv: DatasetVersion, rubric_text: str, seed: int = 0) -> str | None:
    """Send the version's review sample to the labeling decision store as batch `dataset-<version>`
    (the five-question human review); returns the batch id, or None when already registered or empty."""
    batch_id = review_sample_batch_id(dv.version)
    store = ReviewStore(db_url)
    if not dv.review_sample or store.has_batch(batch_id):
        return None
    create_sample_batch(store, batch_id, dv.review_sample, n=len(dv.review_sample), seed=seed, rubric=rubric_text,
                        source=f"datasets/{dv.version}/review_sample.jsonl")
    return batch_id


def create_conflict_batch(
    store: ReviewStore,
    batch_id: str,
    conflicts: Sequence[dict[str, Any]],
    *,
    rubric: str = "",
    source: str | None = None,
) -> list[dict[str, Any]]:
    """Send the examples curation dropped as conflicting for review as batch `batch_id`.

    Each conflict row (`CurationContext.conflicts`: `example_id`, `messages` or `input`, `answer`, `source`,
    `generator`, `kept_example_id`, `kept_source`, `kept_answer`, `similarity`) becomes one item showing the
    dropped example's prompt and answer; the kept example's answer is its evidence and in its lineage.
    pass = the dropped answer is acceptable too (both train), fix = the edited answer replaces both, reject = the
    dropped answer is wrong (a reason starting with "both" drops the kept one too); see
    `curation.steps.conflict_verdicts`, which applies them to the next version. Returns the items (item_id = the dropped example's id; repeats are listed once).
    """
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for idx, c in enumerate(conflicts):
        item_id = c.get("example_id")
        if not item_id or c.get("answer") is None:
            raise ReviewError(f"conflict {idx}: needs the dropped example's example_id and answer")
        if item_id in seen:
            continue
        seen.add(item_id)
        msgs = c.get("messages")
        prompt = ([{"role": m["role"], "content": m["content"]} for m in msgs[:-1]] if msgs
                  else [{"role": "user", "content": c.get("input") or ""}])
        lineage = {"row": idx, "example_id": item_id, "source": c.get("source"), "generator": c.get("generator"),
                   "kept_example_id": c.get("kept_example_id"), "kept_source": c.get("kept_source"),
                   "kept_answer": c.get("kept_answer"), "answer_similarity": c.get("similarity"), "file": source}
        items.append(review_item(
            batch_id, item_id, len(items), CONFLICT_KIND, prompt, c["answer"],
            key="",  # a training-example conflict holds no production input back from weekly review
            model_version=c.get("generator"),
            evidence=f"kept answer ({c.get('kept_source') or 'unknown source'}): {c.get('kept_answer') or ''} "
                     f"-- {CONFLICT_HOW_TO}",
            source=c.get("source") or source, lineage=lineage, rubric=rubric,
        ))
    store.register_batch(batch_id, items, kind=CONFLICT_KIND, rubric=rubric, source=source,
                         meta={"conflicts": len(conflicts), "items": len(items)})
    return items


def register_conflict_review(db_url: str, dv: DatasetVersion, rubric_text: str) -> str | None:
    """Send the version's conflicting examples (dropped ones beside the kept answer) to the decision store as
    batch `conflicts-<version>`; returns the batch id, or None when there are none or it is already registered
    (a rebuild of the same version keeps the batch and its decisions)."""
    batch_id = conflict_batch_id(dv.version)
    if not dv.conflicts:
        return None
    store = ReviewStore(db_url)
    if store.has_batch(batch_id):
        return None
    create_conflict_batch(store, batch_id, dv.conflicts, rubric=rubric_text,
                          source=f"datasets/{dv.version}/conflicts.parquet")
    return batch_id


def conflict_review_status(db_url: str, version: str, n_conflicts: int) -> tuple[bool, str]:
    """(passed, message) of `conflicts_pending_review`: passes without conflicts or once the batch
    `conflicts-<version>` is complete (every item decided, or the batch closed)."""
    if n_conflicts == 0:
        return True, "no conflicting examples"
    batch_id = conflict_batch_id(version)
    store = ReviewStore(db_url)
    if not store.has_batch(batch_id):
        return False, (f"{n_conflicts} of {n_conflicts} conflicts undecided (review batch {batch_id} not registered: "
                       "materialize training_dataset again)")
    p = store.progress(batch_id)
    if p.complete:
        return True, f"{p.items} conflicts reviewed (batch {batch_id} {p.state})"
    return False, (f"{p.items - p.decided} of {p.items} conflicts undecided "
                   f"(review batch {batch_id}: `flywheel review --batch {batch_id}`)")


def _aware(at: datetime) -> datetime:
    """The store's timestamps as UTC-aware (SQLite returns them naive, in UTC)."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def read_conflict_verdicts(store: ReviewStore, until: datetime | None = None,
                           ) -> tuple[list[ConflictVerdict], list[dict[str, Any]]]:
    """Every decided item of every conflict batch as a verdict on (dropped example, kept example), and per batch
    its items, decided items and verdict counts. Batches are read oldest first; a later batch's verdict on the
    same dropped example replaces an earlier one. Undecided items are left out (the conflict stays), and with
    `until` so are batches created and decisions made from then on (a past quarter's rebuild)."""
    infos = sorted((store.batch(b) for b in store.batch_ids(kind=CONFLICT_KIND)), key=lambda i: (i.created_at, i.batch_id))
    if until is not None:
        infos = [i for i in infos if _aware(i.created_at) < until]
    by_dropped: dict[str, ConflictVerdict] = {}
    batches = []
    for info in infos:
        decisions = store.decisions(info.batch_id)
        if until is not None:
            decisions = [d for d in decisions if _aware(d.created_at) < until]
        resolved = resolve_decisions(decisions)
        items = store.items(info.batch_id)
        counts: Counter[str] = Counter()
        for it in items:
            r = resolved.get(it["item_id"])
            if r is None:
                continue
            lineage = json.loads(it.get("lineage") or "{}")
            cv = ConflictVerdict(str(lineage.get("example_id") or it["item_id"]), lineage.get("kept_example_id"),
                                 RowVerdict(info.batch_id, r.verdict, r.text, r.reason, r.reviewer))
            counts["reject_both" if cv.both_wrong else r.verdict] += 1
            by_dropped[cv.dropped_id] = cv
        batches.append({"batch": info.batch_id, "items": len(items), "decided": sum(counts.values()),
                        "pass": counts["pass"], "fix": counts["fix"], "reject": counts["reject"],
                        "reject_both": counts["reject_both"]})
    return list(by_dropped.values()), batches
