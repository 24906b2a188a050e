"""Step 6, balance: real:synthetic ratio (distilled on the synthetic side), self-generated share (the model's
passed production answers included), generator share (seeded)."""

from __future__ import annotations

from flywheel.config import CurationConfig
from flywheel.curation.context import CurationContext, EvalItems, ratio_counts
from flywheel.curation.pipeline import curate, run_steps
from flywheel.curation.rules import evaluate_rules
from flywheel.curation.steps.balance import BalanceStep
from tests.curation.examples import ex


def _human(n: int) -> list[dict]:
    return [ex(f"human question {i}", f"Human answer {i}.", "human") for i in range(n)]


def _passed(n: int) -> list[dict]:
    """Reviewed production rows a reviewer passed: source real, the serving model's own answer."""
    return [ex(f"production question {i}", f"Model answer {i}.", "real", lineage={"verdict": "pass"}) for i in range(n)]


def test_balance_ratio_self_generated_and_generator_share() -> None:
    real = _human(3)
    syn = [ex(f"syn question {i}", f"Syn answer {i}.", "synthetic", generator="gen-a" if i % 5 else "gen-b") for i in range(50)]
    cfg = CurationConfig(max_synthetic_per_real=10, max_self_generated_share=0.1)
    ctx = CurationContext(cfg)
    kept, (report,) = run_steps(real + syn, ctx, [BalanceStep()])
    assert sum(r["source"] == "synthetic" for r in kept) == 30
    assert report.dropped == {"synthetic_over_ratio": 20}
    assert any("gen-a" in w for w in ctx.warnings)  # gen-a wrote 80% > 70%
    again = CurationContext(cfg)
    kept2, _ = run_steps(real + syn, again, [BalanceStep()])
    assert [r["example_id"] for r in kept2] == [r["example_id"] for r in kept]  # seeded


def test_distilled_rows_count_on_the_synthetic_side() -> None:
    """5 human + 300 distilled broke no rule before (distilled was not counted): the ratio rule fails on those
    rows, and the balance step keeps 50 distilled (1:10)."""
    distilled = [ex(f"distilled question {i}", f"Teacher answer {i}.", "distilled", generator="teacher-xl")
                 for i in range(300)]
    cfg = CurationConfig(max_synthetic_per_real=10, min_examples=1, target_examples=1)
    rows = _human(5) + distilled
    assert ratio_counts(rows, set()) == {"real_or_human": 5, "synthetic": 0, "distilled": 300, "generated": 300,
                                         "self_generated": 0}
    unbalanced = curate(rows, cfg, EvalItems([]), steps=[])
    rule = next(r for r in evaluate_rules(unbalanced, None, [], {}) if r.name == "real_synthetic_ratio")
    assert rule.blocking and not rule.passed
    assert rule.message == "5 real/human : 300 generated (0 synthetic + 300 distilled; at most 1:10)"
    kept, (report,) = run_steps(rows, CurationContext(cfg), [BalanceStep()])
    assert report.dropped == {"synthetic_over_ratio": 250} and sum(r["source"] == "distilled" for r in kept) == 50
    balanced = curate(rows, cfg, EvalItems([]))
    assert next(r for r in evaluate_rules(balanced, None, [], {}) if r.name == "real_synthetic_ratio").passed


def test_passed_model_outputs_count_as_self_generated() -> None:
    """100 production answers a reviewer passed were counted 0 self-generated: they are the model's own output
    and count 100 (capped by max_self_generated_share); the reviewer's fixes are human, not self-generated."""
    passed = _passed(100)
    fixed = [ex(f"fixed question {i}", f"Reviewer answer {i}.", "real", human_fixed=True) for i in range(20)]
    assert ratio_counts(passed + fixed, set())["self_generated"] == 100
    assert ratio_counts(passed + fixed, set())["real_or_human"] == 120
    cfg = CurationConfig(max_self_generated_share=0.1)
    kept, (report,) = run_steps(_human(80) + fixed + passed, CurationContext(cfg), [BalanceStep()])
    # others = 80 human + 20 fixed = 100 -> at most floor(0.1 * 100 / 0.9) = 11 self-generated rows
    assert report.dropped == {"self_generated_over_share": 89}
    assert sum(r["source"] == "real" and not r["human_fixed"] for r in kept) == 11
    assert sum(r["human_fixed"] for r in kept) == 20


def test_self_generated_cap_does_not_break_the_ratio() -> None:
    """Dropping passed production answers for the share shrinks the real side: the ratio is applied again."""
    cfg = CurationConfig(max_synthetic_per_real=1, max_self_generated_share=0.5)
    syn = [ex(f"syn question {i}", f"Syn answer {i}.", "synthetic", generator=f"gen-{i % 3}") for i in range(40)]
    kept, _ = run_steps(_human(10) + _passed(30) + syn, CurationContext(cfg), [BalanceStep()])
    counts = ratio_counts(kept, set())
    assert counts["generated"] <= counts["real_or_human"] * 1
    assert counts["self_generated"] <= 0.5 * len(kept)
