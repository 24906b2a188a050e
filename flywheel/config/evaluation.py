"""The `evaluation` section: the fixed eval set, metrics, the gate and the judge."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flywheel.config.base import StrictModel


class JudgeConfig(StrictModel):
    base_url: str = Field(..., description="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    model: str
    api_key_env: str = "FLYWHEEL_JUDGE_API_KEY"
    min_kappa: float = Field(
        0.6, ge=-1, le=1, description="the gate uses the judge only while its Cohen's kappa with reviewers' verdicts is "
        "above this")
    min_calibration_items: int = Field(50, ge=1, description="... measured on at least this many human-decided items")
    calibration_items: int = Field(200, ge=1, description="the most recent human-decided items the judge grades")
    pass_min_grade: int = Field(4, ge=1, le=5, description="a judge grade (1-5) at or above this is the judge's pass")
    reject_max_grade: int = Field(1, ge=1, le=5, description="at or below this the judge's reject; in between: fix")

    @model_validator(mode="after")
    def _calibration(self) -> JudgeConfig:
        if self.reject_max_grade >= self.pass_min_grade:
            raise ValueError(f"expected reject_max_grade < pass_min_grade (got {self.reject_max_grade} >= {self.pass_min_grade})")
        if self.min_calibration_items > self.calibration_items:
            raise ValueError(f"expected min_calibration_items <= calibration_items (got {self.min_calibration_items} > "
                             f"{self.calibration_items})")
        return self


class EvaluationConfig(StrictModel):
    eval_set: str = Field("eval.jsonl", description="the fixed eval file, 100-200 rows each with a `slice`")
    eval_set_version: int = Field(1, ge=1, description="raise to start a new, deliberately changed eval set")
    min_items: int = Field(100, ge=1)
    max_items: int = Field(200, ge=1, description="warn above this: a bigger fixed set costs eval time every cycle")
    metrics: list[Literal["exact_match", "token_f1", "chrf", "format", "judge"]] = Field(
        default_factory=lambda: ["exact_match", "token_f1", "chrf", "format"]
    )
    primary_metric: Literal["exact_match", "token_f1", "chrf", "format", "judge"] = "chrf"
    min_improvement: float = Field(0.0, ge=0, description="the primary metric must beat the champion by at least this")
    slice_tolerance: float = Field(0.02, ge=0, description="no slice may drop by more than this")
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(16, gt=0)
    bootstrap_samples: int = Field(1000, ge=100)
    seed_replicates: int = Field(
        0, ge=0, le=10,
        description="retrain each candidate's dataset with this many other seeds; their spread widens the gate's intervals",
    )
    judge: JudgeConfig | None = None
