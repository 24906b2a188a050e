"""Step 3, duplicates: the most trusted copy stays."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import CurationContext
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.dedup import DedupStep, exact_key
from tests.curation.examples import ex


def test_dedup_keeps_most_trusted_source() -> None:
    q = "how do i reset my password on the mobile app"
    a = "Open Settings, then Security, then Reset password."
    rows = [ex(q, a, "synthetic", generator="g1"), ex(q + "?", a, "distilled", generator="t"), ex(q + "??", a, "human"),
            ex(q + " ", a + " ", "real", weight=3.0), ex(q + "!", a, "real", human_fixed=True)]
    ctx = CurationContext(CurationConfig())
    kept, _ = run_steps(rows, ctx, [DedupStep()])
    assert len(kept) == 1 and kept[0]["human_fixed"]
    instead = {d["example_id"]: d["kept_instead"] for d in ctx.drops}
    for d in ctx.drops:  # every drop points (directly or through a dropped copy) at the kept one
        target = d["kept_instead"]
        while target in instead:
            target = instead[target]
        assert target == kept[0]["example_id"]


def test_exact_key_ignores_case_and_spacing_but_not_punctuation() -> None:
    """Exact copies compare whole conversations: punctuation is content in an answer ({"a": 1} is not a 1)."""
    a = ex("Reset  my Password", '{"a": 1}')["messages"]
    assert exact_key(a) == exact_key(ex("reset my password", '{"a":  1}')["messages"])
    assert exact_key(a) != exact_key(ex("reset my password", "a 1")["messages"])
