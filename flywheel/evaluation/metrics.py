"""Answer metrics on a 0-1 scale: exact match, token F1, chrF, format compliance, an LLM judge;
and the paired bootstrap confidence interval of a candidate-minus-champion difference.

Every metric returns a float in [0, 1] (chrF is sacrebleu's sentence chrF divided by 100), so
differences and tolerances mean the same thing for every metric. The judge may return NaN for an
answer it could not grade; aggregates skip those pairs and count them.
"""

from __future__ import annotations

import json
import math
import re
import string
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import numpy as np
from sacrebleu.metrics import CHRF

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")
_CHRF = CHRF()


def normalize_text(text: str) -> str:
    """Normalise for matching: NFKC, lower case, no punctuation, no English articles, single spaces."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = _PUNCT.sub(" ", text)
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_text(prediction) == normalize_text(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 over normalised whitespace tokens (1.0 when both are empty)."""
    pred, ref = normalize_text(prediction).split(), normalize_text(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def chrf(prediction: str, reference: str) -> float:
    """sacrebleu sentence chrF, scaled to 0-1."""
    if not prediction and not reference:
        return 1.0
    return _CHRF.sentence_score(prediction, [reference]).score / 100.0


@dataclass(frozen=True)
class FormatRule:
    """The answer format from `curation.answer_regex` / `curation.answer_json_schema` (none: always 1.0)."""

    regex: str | None = None
    json_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.regex is not None:
            re.compile(self.regex)
        if self.json_schema is not None:
            jsonschema.validators.validator_for(self.json_schema).check_schema(self.json_schema)

    def score(self, answer: str) -> float:
        """1.0 when the answer fully matches the regex and validates against the JSON schema."""
        if self.regex is not None and re.fullmatch(self.regex, answer.strip(), flags=re.DOTALL) is None:
            return 0.0
        if self.json_schema is not None:
            try:
                jsonschema.validate(json.loads(answer), self.json_schema)
            except (ValueError, jsonschema.ValidationError):
                return 0.0
        return 1.0


# --- LLM judge ---------------------------------------------------------------------------------
class JudgeError(RuntimeError):
    """The judge endpoint could not be reached or kept failing."""


JUDGE_INSTRUCTIONS = """You grade one answer of an assistant against the project's quality rubric.

Rubric:
{rubric}

Read the user's request, the reference answer and the answer to grade. Reply with JSON only:
{{"score": <integer 1-5>, "reason": "<one sentence>"}} where 5 = as good as the reference and fully
follows the rubric, 1 = wrong, harmful or ignores the rubric."""

_SCORE_JSON = re.compile(r"\{[^{}]*\}", re.DOTALL)
_FIRST_NUMBER = re.compile(r"\b([1-5])(?:\.\d+)?\b")


def parse_judge_score(content: str) -> float:
    """The judge's 1-5 grade mapped to 0-1 ((s - 1) / 4); NaN when the reply holds no grade."""
    grade: float | None = None
    for blob in _SCORE_JSON.findall(content):
        try:
            value = json.loads(blob).get("score")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)):
            grade = float(value)
            break
    if grade is None:
        m = _FIRST_NUMBER.search(content)
        if m is None:
            return math.nan
        grade = float(m.group(1))
    grade = min(5.0, max(1.0, grade))
    return (grade - 1.0) / 4.0


class LLMJudge:
    """Grades answers against the rubric through any OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        rubric: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.system = JUDGE_INSTRUCTIONS.format(rubric=rubric.strip() or "(no rubric written)")
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                resp = self._client.post(self.url, json=payload)
                if resp.status_code < 400:
                    return resp.json()
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code < 500 and resp.status_code != 429:
                    break
            except (httpx.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(0.5 * (attempt + 1))
        raise JudgeError(f"judge endpoint {self.url} failed: {last}")

    def score(self, question: str, reference: str, answer: str) -> float:
        """One answer's grade on 0-1 (NaN when the reply could not be parsed)."""
        user = f"Request:\n{question}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{answer}"
        data = self._post(
            {
                "model": self.model,
                "temperature": 0,
                "messages": [{"role": "system", "content": self.system}, {"role": "user", "content": user}],
            }
        )
        try:
            content = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            return math.nan
        return parse_judge_score(content)


# --- paired bootstrap ------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedDifference:
    """Mean candidate-minus-champion difference with a percentile bootstrap confidence interval."""

    candidate: float
    champion: float
    diff: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
        }


def paired_bootstrap(
    candidate: Sequence[float],
    champion: Sequence[float],
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Resample item indices (the same for both models) `samples` times; pairs with a NaN are skipped."""
    a = np.asarray(candidate, dtype=float)
    b = np.asarray(champion, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs equal lengths, got {a.shape[0]} and {b.shape[0]}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.shape[0])
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))
    means = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return PairedDifference(float(a.mean()), float(b.mean()), float(d.mean()), float(lo), float(hi), n)


METRIC_FUNCTIONS = {"exact_match": exact_match, "token_f1": token_f1, "chrf": chrf}

__all__ = [
    "FormatRule",
    "JudgeError",
    "LLMJudge",
    "METRIC_FUNCTIONS",
    "PairedDifference",
    "chrf",
    "exact_match",
    "normalize_text",
    "paired_bootstrap",
    "parse_judge_score",
    "token_f1",
]
