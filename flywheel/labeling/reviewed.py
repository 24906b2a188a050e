"""Labels back into examples: pass -> the model output is the answer, fix -> the edited answer
(human_fixed), reject -> dropped (kept in the store with its reason)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flywheel.capture.pii import TrainingTextScrubber
from flywheel.core.records import make_example
from flywheel.labeling.decisions import resolve_decisions
from flywheel.labeling.store import Decision

REVIEWED_ASSET = "reviewed_examples"


def build_reviewed_examples(
    batch_id: str, items: Sequence[dict[str, Any]], decisions: Sequence[Decision],
    scrubber: TrainingTextScrubber | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """EXAMPLE_SCHEMA rows (source=real) from a reviewed batch; rejected and undecided items are left out.
    With `scrubber`, reviewers' fixed answers are scrubbed of PII (patterns and NER) first: a reviewer
    may type a real address or name into a fix.

    Returns the rows and counts (items = examples + rejected + undecided).
    """
    resolved = resolve_decisions(decisions)
    scrubbed: dict[str, str | None] = {}
    if scrubber is not None:
        fixes = {item: r.text for item, r in resolved.items() if r.verdict == "fix" and r.text}
        scrubbed = dict(zip(fixes, scrubber.scrub_texts(list(fixes.values())), strict=True))
    rows: list[dict[str, Any]] = []
    counts = {"items": len(items), "examples": 0, "passed": 0, "fixed": 0, "rejected": 0, "undecided": 0}
    for it in items:
        r = resolved.get(it["item_id"])
        if r is None:
            counts["undecided"] += 1
            continue
        if r.verdict == "reject":
            counts["rejected"] += 1
            continue
        answer = scrubbed.get(it["item_id"], r.text) if r.verdict == "fix" else it["output"]
        counts["fixed" if r.verdict == "fix" else "passed"] += 1
        lineage = {
            "interaction_id": it.get("interaction_id"), "batch": batch_id, "item_id": it["item_id"],
            "reviewer": r.reviewer, "reviewers": list(r.reviewers), "verdict": r.verdict,
            "signal": it.get("signal"), "kind": it.get("kind"), "duplicate_ids": it.get("duplicate_ids") or [],
        }
        rows.append(
            make_example(
                [*it["messages"], {"role": "assistant", "content": answer}], "real",
                human_fixed=r.verdict == "fix", lineage=lineage, weight=float(it.get("weight") or 1.0),
            )
        )
    counts["examples"] = len(rows)
    return rows, counts
