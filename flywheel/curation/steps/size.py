"""Step 7, size: the floor, the target and the ceiling, reported (the dataset's rules act on them)."""

from __future__ import annotations

from typing import Any

from flywheel.curation.context import CurationContext, Step


class SizeStep(Step):
    """The floor (fail), the target (warn) and the ceiling (more data brings little): reported."""

    name = "size"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        n = len(rows)
        ctx.facts["size"] = {"rows": n, "floor": cfg.min_examples, "target": cfg.target_examples, "ceiling": cfg.ceiling_examples}
        if n > cfg.ceiling_examples:
            ctx.warnings.append(f"{n} examples: above the ceiling {cfg.ceiling_examples}, where more data brings little")
        elif n < cfg.min_examples:
            ctx.warnings.append(f"{n} examples: below the floor {cfg.min_examples}")
        elif n < cfg.target_examples:
            ctx.warnings.append(f"{n} examples: below the target {cfg.target_examples}")
        return rows
