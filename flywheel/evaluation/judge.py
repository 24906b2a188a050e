"""The LLM judge: grades an answer against the project's rubric through any OpenAI-compatible
`/chat/completions` endpoint (1-5, mapped to 0-1; NaN when the reply holds no grade)."""

from __future__ import annotations

import json
import math
import os
import re

from flywheel.config import ProjectConfig
from flywheel.core.errors import FlywheelError
from flywheel.generation.client import ChatClient, EndpointError
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
        self.model = model
        self.system = JUDGE_INSTRUCTIONS.format(rubric=rubric.strip() or "(no rubric written)")
        self.retries = retries
        self._client = ChatClient(base_url, model, api_key=api_key, timeout_s=timeout_s, max_retries=retries)
        self.url = self._client.url

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def score(self, question: str, reference: str, answer: str) -> float:
        """One answer's grade on 0-1 (NaN when the reply could not be parsed)."""
        user = f"Request:\n{question}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{answer}"
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        try:
            reply = self._client.chat(messages, temperature=0)
        except EndpointError as exc:
            raise JudgeError(f"judge endpoint {self.url} failed: {exc.detail}") from exc
        if reply.content is None:
            return math.nan
        return parse_judge_score(reply.content)


def make_judge(project: ProjectConfig) -> LLMJudge | None:
    """The configured LLM judge (API key from the env var named in evaluation.judge), or None."""
    cfg = project.evaluation.judge
    if cfg is None:
        return None
    return LLMJudge(cfg.base_url, cfg.model, rubric_text(project), api_key=os.environ.get(cfg.api_key_env))
