"""Step 6, balance: real:synthetic ratio, self-generated share, generator share (seeded)."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import CurationContext
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.balance import BalanceStep
from tests.curation.examples import ex


def test_balance_ratio_self_generated_and_generator_share() -> None:
    real = [ex(f"real question {i}", f"Real answer {i}.", "real") for i in range(3)]
    syn = [ex(f"syn question {i}", f"Syn answer {i}.", "synthetic", generator="gen-a" if i % 5 else "gen-b") for i in range(50)]
    mine = [ex(f"self question {i}", f"Self answer {i}.", "distilled", generator="model-v3") for i in range(10)]
    cfg = CurationConfig(max_synthetic_per_real=10, max_self_generated_share=0.1)
    ctx = CurationContext(cfg, production_model_versions={"model-v3"})
    kept, (report,) = run_steps(real + syn + mine, ctx, [BalanceStep()])
    assert sum(r["source"] == "synthetic" for r in kept) == 30
    n_self = sum(r["generator"] == "model-v3" for r in kept)
    assert n_self / len(kept) <= 0.1 and n_self == 3  # 0.1 * 33 / 0.9 = 3.67
    assert report.dropped == {"synthetic_over_ratio": 20, "self_generated_over_share": 7}
    assert any("gen-a" in w for w in ctx.warnings)  # gen-a wrote 80% > 70%
    again = CurationContext(cfg, production_model_versions={"model-v3"})
    kept2, _ = run_steps(real + syn + mine, again, [BalanceStep()])
    assert [r["example_id"] for r in kept2] == [r["example_id"] for r in kept]  # seeded
