"""The `labeling` section: review batches and their limits."""

from __future__ import annotations

from pydantic import Field

from flywheel.config.base import StrictModel


class LabelingQuotas(StrictModel):
    """Share of the batch reserved for each candidate kind; unused share flows to the next kind."""

    correction: float = Field(0.4, ge=0, le=1)
    negative: float = Field(0.3, ge=0, le=1)
    low_confidence: float = Field(0.2, ge=0, le=1)
    control: float = Field(0.1, ge=0, le=1)


class LabelingConfig(StrictModel):
    batch_size: int = Field(200, gt=0)
    max_request_bytes: int = Field(1_048_576, ge=4096, description="the review page refuses larger request bodies (413)")
    max_fix_chars: int = Field(20_000, gt=0, description="the longest fixed answer a reviewer may save")
    max_reason_chars: int = Field(2_000, gt=0, description="the longest reject reason")
    max_import_line_bytes: int = Field(
        4_194_304, ge=4096, description="`flywheel labeling import` refuses a decisions file with a longer line"
    )
    quotas: LabelingQuotas = Field(default_factory=LabelingQuotas)
    low_confidence_threshold: float = Field(0.5, ge=0, le=1)
    near_duplicate_similarity: float = Field(0.9, ge=0, le=1)
    fix_rate_warn: float = Field(0.6, ge=0, le=1)
    reject_rate_warn: float = Field(0.4, ge=0, le=1)
    rate_warn_min_decided: int = Field(20, ge=1, description="judge fix/reject rates only once this many items are decided")
    agreement_kappa_warn: float = Field(0.4, ge=-1, le=1, description="warn when Cohen's kappa of double-reviewed items is below this")
    seed: int = 0
