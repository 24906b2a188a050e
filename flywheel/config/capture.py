"""The `capture` section: signals, PII redaction, the collector."""

from __future__ import annotations

import re
import typing
from typing import Literal

from pydantic import Field, field_validator

from flywheel.config.base import StrictModel

PiiKind = Literal["secret", "email", "iban", "card", "ssn", "passport", "dob", "address", "person", "ip", "phone"]


class PiiConfig(StrictModel):
    """What capture redacts (`flywheel.capture.pii`), and the NER pass where rows become training data."""

    enabled: bool = True
    kinds: list[PiiKind] = Field(default_factory=lambda: list(typing.get_args(PiiKind)))
    allow: list[str] = Field(default_factory=list, description="never redacted: the product's own e-mail addresses, e-mail domains (nimbus.example) and phone numbers")
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "IN"], description="ISO 3166 regions whose national phone numbers are recognised")
    ner: bool = Field(True, description="run NER on rows entering a labeling batch, a dataset version or the eval set, and on fixed answers")
    ner_models: list[str] = Field(default_factory=lambda: ["en_core_web_sm"], description="spaCy pipelines to try, the first installed one is used")

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not re.fullmatch(r"[A-Z]{2}", r)]
        if bad:
            raise ValueError(f"phone regions are ISO 3166 codes such as US, DE; got {bad}")
        return value


class SignalWeights(StrictModel):
    correction: float = Field(3.0, ge=0)
    negative: float = Field(2.0, ge=0)
    positive: float = Field(1.0, ge=0)
    none: float = Field(0.5, ge=0)


class CollectorConfig(StrictModel):
    """`flywheel collect` (OTLP/HTTP + feedback) and `flywheel serve`: request limits."""

    token_env: str = Field("FLYWHEEL_COLLECTOR_TOKEN", description="env var holding the bearer token clients send")
    max_body_bytes: int = Field(8 << 20, ge=4096, description="larger request bodies are refused (413), also once decompressed")
    max_inflight: int = Field(32, ge=1, description="requests handled at once; more get 503 + Retry-After (bounded memory)")
    retry_after_s: int = Field(1, ge=1, description="the Retry-After of a 503")
    serve_max_tokens: int = Field(512, ge=1, description="`flywheel serve` refuses a larger max_tokens")


class CaptureConfig(StrictModel):
    resubmit_window_s: int = Field(120, gt=0, description="a similar message in the same session within this many seconds is a resubmission")
    resubmit_similarity: float = Field(0.6, ge=0, le=1, description="rapidfuzz ratio (0-1) above which two messages count as the same request")
    max_field_chars: int = Field(100_000, gt=0, description="longer text fields are quarantined as huge")
    orphan_tmp_after_s: float = Field(600.0, gt=0, description="a landing .tmp untouched this long was left by a killed writer and is published (more than any writer's max_age_s)")
    quarantine_rate_warn: float = Field(0.05, ge=0, le=1)
    pseudonymize: bool = Field(True, description="replace user_id and session_id at capture by a keyed hash (HMAC-SHA256, key in $FLYWHEEL_PSEUDONYM_KEY); false stores the raw ids")
    retention_days: int | None = Field(None, gt=0, description="delete a day's landing files once they are this many days old and their day is captured (null: keep them)")
    signal_weights: SignalWeights = Field(default_factory=SignalWeights)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)
