"""The `sources` and `curation` sections: example files and the rules a dataset version is built under."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from flywheel.config.base import StrictModel


class SourcesConfig(StrictModel):
    """Example files outside the production traffic (paths relative to the project file)."""

    seed: list[str] = Field(default_factory=list, description="human-written examples, any of the three formats")
    synthetic: list[str] = Field(default_factory=list, description="generator-written examples; every row names its `generator`")
    distilled: list[str] = Field(default_factory=list, description="a teacher model's answers to real inputs; every row names its `teacher`")


class CurationConfig(StrictModel):
    system_prompt: str | None = Field(None, description="the system prompt used at inference; training rows must match it")
    min_examples: int = Field(200, ge=1)
    target_examples: int = Field(500, ge=1)
    ceiling_examples: int = Field(20_000, ge=1)
    max_synthetic_per_real: float = Field(10.0, gt=0)
    max_generator_share: float = Field(0.7, gt=0, le=1)
    max_self_generated_share: float = Field(0.1, ge=0, le=1)
    self_generator_names: list[str] = Field(default_factory=list, description="model names that count as the current model itself")
    answer_min_chars: int = Field(1, ge=0)
    answer_max_chars: int = Field(4000, gt=0)
    answer_regex: str | None = None
    answer_json_schema: dict[str, Any] | None = None
    refusal_is_allowed: bool = False
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    minhash_permutations: int = Field(64, ge=16)
    decontamination_ngram: int = Field(13, ge=3)
    # near-copies of short eval items (shorter than the n-gram window): a training user turn whose normalised
    # form is within this many character edits (insert, delete, substitute, swap adjacent) of an eval input
    # is a leak. 2 catches every 1-2 edit variant of the demo's eval set and flags no distinct phrasing
    # ("How can I ..." vs "How do I ..." is 3 edits); see benchmarks/decontamination.py.
    decontamination_max_edits: int = Field(2, ge=0, description="a training input this many character edits from an eval input leaks it")
    decontamination_max_edit_share: float = Field(
        0.5, ge=0, le=1, description="at most this share of an eval input's characters may differ (1-2 word inputs)")
    review_sample_size: int = Field(50, ge=0)
    admission_sample_size: int = Field(
        150, ge=1, description="rows of each synthetic or distilled file a person reviews before the file may train "
        "(the guide: 100-200; a smaller file is reviewed whole)")
    min_sample_pass_rate: float = Field(
        0.8, ge=0, le=1, description="a synthetic or distilled file is admitted once its reviewed sample's passes / "
        "decided items reach this")
    diversity_drop_warn: float = Field(0.1, ge=0, le=1)
    distribution_gap_warn: float = Field(0.25, ge=0, le=1)
    max_tokens: int = Field(4096, gt=0)
    seed: int = 0
    conflict_answer_similarity: float = Field(0.5, ge=0, le=1, description="near-same inputs whose answers' rapidfuzz ratio (0-1) is below this conflict")
    shingle_chars: int = Field(5, ge=2, description="character shingle size of the near-duplicate MinHash")
    style_outlier_iqr: float = Field(3.0, gt=0, description="an answer whose log-length lies beyond this many IQRs outside its source/slice's quartiles is a style outlier")
    mislabel_action: Literal["drop", "flag"] = Field(
        "drop", description="rows whose input reads like another answer class's: drop them, or only flag them for review")
    mislabel_min_class_examples: int = Field(
        10, ge=2, description="answer classes with fewer rows are not checked for mislabels (their rows are left alone)")
    mislabel_answer_threshold: float = Field(
        0.8, gt=0, le=1, description="answers whose MinHash Jaccard (char shingles) with a class's answer is at least this join it")
    mislabel_same_inputs_similarity: float = Field(
        0.8, gt=0,
        description="answer classes whose mean inputs are this alike (cosine corrected for class size) answer the "
                    "same questions with alternative replies: one class")
    mislabel_confidence: float = Field(
        0.75, gt=0, le=1,
        description="a row is mislabeled when its predicted class's probability reaches this share of that class's mean "
                    "(1 = confident learning's threshold; lower finds more)")

    @field_validator("answer_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.DOTALL)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("answer_json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            import jsonschema  # a few hundred ms: only when a schema is set

            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value
