"""Step 6, balance: the real:synthetic ratio, the self-generated share, the generator share.

Synthetic rows beyond `max_synthetic_per_real` per real or human row, and self-generated rows
(written by the model being trained) beyond `max_self_generated_share`, are down-sampled (seeded).
One generator writing more than `max_generator_share` of the synthetic rows is a warning.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from flywheel.curation.context import REAL_SOURCES, CurationContext, Step, is_self_generated


class BalanceStep(Step):
    """Real:synthetic ratio and self-generated share (seeded down-sampling); generator-share warning."""

    name = "balance"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        rng = np.random.default_rng(cfg.seed)
        n_real = sum(1 for r in rows if r.get("source") in REAL_SOURCES)
        synthetic = [i for i, r in enumerate(rows) if r.get("source") == "synthetic"]
        allowed = math.floor(n_real * cfg.max_synthetic_per_real)
        drop: set[int] = set()
        if len(synthetic) > allowed:
            keep = set(rng.choice(synthetic, size=allowed, replace=False).tolist()) if allowed else set()
            for i in synthetic:
                if i not in keep:
                    drop.add(i)
                    ctx.drop(rows[i], self.name, "synthetic_over_ratio",
                             f"{len(synthetic)} synthetic for {n_real} real; at most {cfg.max_synthetic_per_real:g} per real")
        self_names = set(cfg.self_generator_names) | ctx.production_model_versions
        selfgen = [i for i, r in enumerate(rows) if i not in drop and is_self_generated(r, self_names)]
        others = len(rows) - len(drop) - len(selfgen)
        share = cfg.max_self_generated_share
        cap = math.floor(share * others / (1 - share)) if share < 1 else len(selfgen)
        if len(selfgen) > cap:
            keep = set(rng.choice(selfgen, size=cap, replace=False).tolist()) if cap else set()
            for i in selfgen:
                if i not in keep:
                    drop.add(i)
                    ctx.drop(rows[i], self.name, "self_generated_over_share",
                             f"generator {rows[i]['generator']} is the current model; at most {share:.0%} self-generated")
        kept = [r for i, r in enumerate(rows) if i not in drop]
        gens = Counter(r.get("generator") or "(none)" for r in kept if r.get("source") == "synthetic")
        n_syn = sum(gens.values())
        shares = {g: round(c / n_syn, 4) for g, c in gens.most_common()} if n_syn else {}
        ctx.facts["generator_shares"] = shares
        for g, s in shares.items():
            if s > cfg.max_generator_share:
                ctx.warnings.append(f"generator {g} wrote {s:.0%} of the synthetic rows (> {cfg.max_generator_share:.0%}): model-collapse risk")
        return kept
