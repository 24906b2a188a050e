"""Registry rows the model tests write: an evaluated version and an evaluation summary."""

from __future__ import annotations

from flywheel.models import registry


def summary(candidate: str, champion: str, cand: float, champ: float) -> dict:
    block = {"candidate": cand, "champion": champ, "diff": cand - champ, "ci_low": cand - champ - 0.05,
             "ci_high": cand - champ + 0.05, "n": 100}
    return {
        "candidate": candidate, "champion": champion, "eval_set_version": 1, "eval_set_hash": "h1",
        "primary_metric": "chrf", "overall": {"chrf": block},
        "slices": {"clean": {"n": 50, "metrics": {"chrf": block}}, "messy": {"n": 50, "metrics": {"chrf": block}}},
    }


def record(db: str, version: str, passed: bool, score: float = 0.5, reasons: list[str] | None = None) -> None:
    registry.record_candidate(
        db, version, dataset_version=f"ds-{version}", base_model="tiny", adapter_path=f"/models/{version}",
        eval_set_hash="h1", eval_set_version=1, scores={"overall": {"chrf": score}}, gate_passed=passed,
        gate_reasons=reasons or (["passed"] if passed else ["chrf dropped"]),
    )
