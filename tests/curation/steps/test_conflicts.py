"""Step 4, conflicts: near-same inputs with contradicting answers are listed for review."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import CurationContext
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.conflicts import ConflictStep
from flywheel.curation.steps.dedup import DedupStep
from tests.curation.examples import ex


def test_conflicts_listed_for_review() -> None:
    q = "what is the refund window for annual plans"
    rows = [ex(q, "Annual plans can be refunded within 30 days of purchase.", "real"),
            ex(q + "?", "Refunds are never possible, sorry about that!", "synthetic", generator="g1"),
            ex("an unrelated question about shipping times to canada", "Five to seven business days.", "human")]
    ctx = CurationContext(CurationConfig())
    kept, reports = run_steps(rows, ctx, [DedupStep(), ConflictStep()])
    assert len(kept) == 2
    (c,) = ctx.conflicts
    assert c["source"] == "synthetic" and c["kept_source"] == "real" and c["similarity"] < 0.5
    assert c["messages"] == rows[1]["messages"]  # the dropped conversation, for the review batch
    assert reports[1].dropped == {"conflicting_answer": 1}
