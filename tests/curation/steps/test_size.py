"""Step 7, size: floor, target and ceiling are reported, nothing is dropped."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import CurationContext
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.size import SizeStep
from tests.curation.examples import varied_rows


def test_size_reports_floor_target_and_ceiling() -> None:
    rows = varied_rows(5)
    for cfg, warning in ((CurationConfig(min_examples=10, target_examples=20), "below the floor 10"),
                         (CurationConfig(min_examples=2, target_examples=20), "below the target 20"),
                         (CurationConfig(min_examples=1, target_examples=2, ceiling_examples=3), "above the ceiling 3")):
        ctx = CurationContext(cfg)
        kept, _ = run_steps(rows, ctx, [SizeStep()])
        assert kept == rows and ctx.facts["size"]["rows"] == 5
        assert [w for w in ctx.warnings if warning in w]
