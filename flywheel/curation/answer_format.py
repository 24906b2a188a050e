"""The answer format a project promises (`curation.answer_regex`, `curation.answer_json_schema`).

One rule, read the same way everywhere: the *stripped* answer must match the regex as a whole
(`re.fullmatch`, DOTALL) and, with a schema, parse as JSON that validates against it. Curation drops
a training row whose answer breaks it (the rubric step, reason `answer_format`); evaluation scores
format compliance with it (1.0 or 0.0). An unset regex (None or '') or schema (None) checks nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flywheel.config import CurationConfig
from flywheel.core.errors import InputError


@dataclass(frozen=True)
class AnswerFormat:
    """The configured answer format; `problem(answer)` says what an answer breaks, `score` is 1.0 or 0.0."""

    regex: str | None = None
    json_schema: dict[str, Any] | None = None
    _pattern: re.Pattern[str] | None = field(init=False, default=None, repr=False, compare=False)
    _validator: Any = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = validator = None
        if self.regex:
            try:
                pattern = re.compile(self.regex, re.DOTALL)
            except re.error as exc:
                raise InputError(f"curation.answer_regex {self.regex!r} is not a valid regular expression: {exc}") from exc
        if self.json_schema is not None:
            import jsonschema  # only when a schema is set: the code location starts faster

            cls = jsonschema.validators.validator_for(self.json_schema)
            try:
                cls.check_schema(self.json_schema)
            except jsonschema.SchemaError as exc:
                raise InputError(f"curation.answer_json_schema is not a valid JSON schema: {exc.message}") from exc
            validator = cls(self.json_schema)
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "_validator", validator)

    @classmethod
    def from_config(cls, config: CurationConfig) -> AnswerFormat:
        """The format of a project's `curation` section."""
        return cls(config.answer_regex, config.answer_json_schema)

    @property
    def configured(self) -> bool:
        """Whether there is anything to check."""
        return self._pattern is not None or self._validator is not None

    def describe(self) -> str:
        """The configured format in words (for rule messages and cards)."""
        parts = ([f"answer_regex {self.regex!r}"] if self._pattern is not None else []) + (
            ["answer_json_schema"] if self._validator is not None else [])
        return " and ".join(parts) or "no answer format configured"

    def problems(self, answer: str) -> list[str]:
        """Every way `answer` breaks the format (empty when it complies)."""
        out = []
        if self._pattern is not None and self._pattern.fullmatch(answer.strip()) is None:
            out.append(f"does not fully match answer_regex {self.regex!r}")
        if self._validator is not None:
            try:
                value = json.loads(answer)
            except ValueError as exc:
                out.append(f"not JSON: {exc}")
            else:
                err = next(iter(self._validator.iter_errors(value)), None)
                if err is not None:
                    out.append(f"answer_json_schema: {err.message[:200]}")
        return out

    def problem(self, answer: str) -> str | None:
        """What `answer` breaks, in words; None when it complies."""
        return "; ".join(self.problems(answer)) or None

    def score(self, answer: str) -> float:
        """Format compliance: 1.0 when the answer complies, else 0.0."""
        return 0.0 if self.problems(answer) else 1.0
