"""The LLM judge: grades an answer against the project's rubric through any OpenAI-compatible
`/chat/completions` endpoint (1-5, mapped to 0-1; NaN when the reply holds no grade)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Any

import httpx

from flywheel.config import ProjectConfig
from flywheel.core.errors import FlywheelError
from flywheel.project import rubric_text


class JudgeError(FlywheelError, RuntimeError):
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


def make_judge(project: ProjectConfig) -> LLMJudge | None:
    """The configured LLM judge (API key from the env var named in evaluation.judge), or None."""
    cfg = project.evaluation.judge
    if cfg is None:
        return None
    return LLMJudge(cfg.base_url, cfg.model, rubric_text(project), api_key=os.environ.get(cfg.api_key_env))
