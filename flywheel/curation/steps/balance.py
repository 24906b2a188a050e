"""Step 6, balance: the real:synthetic ratio, the self-generated share, the generator share.

Generated rows (synthetic and distilled, no person's edit) beyond `max_synthetic_per_real` per real-side
row (real, human, human_fixed) are down-sampled together (seeded), and so are self-generated rows beyond
`max_self_generated_share`: answers of a model among `self_generator_names` or the production model
versions, and production answers a reviewer passed (the serving model wrote them; a fixed one is the
reviewer's). Sides are defined once in `curation.context` (`is_real_side`, `is_generated`,
`is_self_generated`). One generator writing more than `max_generator_share` of the synthetic rows is a
warning.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from flywheel.curation.context import CurationContext, Step, is_generated, is_real_side, is_self_generated


class BalanceStep(Step):
    """Real:synthetic ratio and self-generated share (seeded down-sampling); generator-share warning."""

    name = "balance"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        rng = np.random.default_rng(cfg.seed)
        self_names = set(cfg.self_generator_names) | ctx.production_model_versions
        real = {i for i, r in enumerate(rows) if is_real_side(r)}
        generated = [i for i, r in enumerate(rows) if is_generated(r)]
        selfgen = [i for i, r in enumerate(rows) if is_self_generated(r, self_names)]
        share = cfg.max_self_generated_share
        drop: set[int] = set()

        def down_sample(pool: list[int], allowed: int, reason: str, detail: Callable[[int], str]) -> bool:
            left = [i for i in pool if i not in drop]
            if len(left) <= allowed:
                return False
            keep = set(rng.choice(left, size=allowed, replace=False).tolist()) if allowed else set()
            for i in left:
                if i not in keep:
                    drop.add(i)
                    ctx.drop(rows[i], self.name, reason, detail(i))
            return True

        # a self-generated passed production answer is on the real side too: dropping it for the share can
        # break the ratio again, so both caps are applied until neither drops anything (only rows leave)
        changed = True
        while changed:
            n_real = len(real - drop)
            n_gen = sum(1 for i in generated if i not in drop)
            changed = down_sample(
                generated, math.floor(n_real * cfg.max_synthetic_per_real), "synthetic_over_ratio",
                lambda i, n_gen=n_gen, n_real=n_real: f"{n_gen} synthetic + distilled for {n_real} real/human; "
                                                      f"at most {cfg.max_synthetic_per_real:g} per real")
            n_self = sum(1 for i in selfgen if i not in drop)
            others = len(rows) - len(drop) - n_self
            cap = math.floor(share * others / (1 - share)) if share < 1 else n_self
            changed = down_sample(
                selfgen, cap, "self_generated_over_share",
                lambda i: (f"generator {rows[i]['generator']} is the current model" if rows[i].get("generator")
                           else "a production answer a reviewer passed (the model's own)")
                + f"; at most {share:.0%} self-generated") or changed
        kept = [r for i, r in enumerate(rows) if i not in drop]
        gens = Counter(r.get("generator") or "(none)" for r in kept if r.get("source") == "synthetic")
        n_syn = sum(gens.values())
        shares = {g: round(c / n_syn, 4) for g, c in gens.most_common()} if n_syn else {}
        ctx.facts["generator_shares"] = shares
        for g, s in shares.items():
            if s > cfg.max_generator_share:
                ctx.warnings.append(f"generator {g} wrote {s:.0%} of the synthetic rows (> {cfg.max_generator_share:.0%}): model-collapse risk")
        return kept
