"""Step 2, rubric: automated proxies for the rubric's five questions, and the answer format.

An answer that breaks the configured answer format (`curation.answer_regex` fully matching the
stripped answer, `answer_json_schema`; see `curation.answer_format`) is dropped (`answer_format`):
the format is a promise to production, so no wrong-format row trains. Of the proxy rules, two or
more failures drop the example, exactly one flags it for review (kept, `flagged.parquet`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from flywheel.config import CurationConfig
from flywheel.core.text import final_answer
from flywheel.curation.answer_format import AnswerFormat
from flywheel.curation.context import CurationContext, Step

ANSWER_FORMAT = "answer_format"
REFUSAL_PATTERNS = (
    r"\bi(?:'m| am) sorry,? but i (?:can(?:no|')t|am unable|won't)", r"\bi can(?:no|')t (?:help|assist|provide|do that)",
    r"\bi(?:'m| am) (?:not able|unable) to (?:help|assist|provide|answer)", r"\bas an ai(?: language model)?,? i (?:can(?:no|')t|don't|do not|am not able)",
    r"\bi(?: must|'ll have to)? (?:decline|refuse)\b", r"\bi won't be able to (?:help|assist)",
    r"\bi(?:'m| am) not (?:allowed|permitted) to\b",
)
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)
_WORD = re.compile(r"\w+")
_LIST_MARKER = re.compile(r"(?m)^\s*(?:\w{1,3}|[ivx]+)\)")
_MARKDOWN = re.compile(r"(?m)^\s*(?:#{1,6}\s|[-*+]\s|\d+\.\s|```)|\*\*")
_TERMINAL = tuple(".!?)]}\"'`:;*…»>")


def rule_empty_or_degenerate(answer: str) -> str | None:
    """Q1 (proud to show it?): an empty answer, or one that is mostly the same words repeated."""
    if not answer.strip():
        return "empty answer"
    words = _WORD.findall(answer.lower())
    if len(words) >= 20 and len(set(words)) / len(words) < 0.15:
        return f"{len(set(words))} distinct words in {len(words)}"
    return None


def rule_truncated(answer: str) -> str | None:
    """Q1/Q3: ends mid-sentence, or unbalanced brackets / code fences."""
    text = answer.strip()
    if text.count("```") % 2:
        return "unclosed code fence"
    body = _LIST_MARKER.sub("", text)
    for o, c in ("()", "[]", "{}"):
        if body.count(o) != body.count(c):
            return f"unbalanced {o}{c}: {body.count(o)} vs {body.count(c)}"
    last_line = text.rsplit("\n", 1)[-1].strip()
    if len(text) >= 40 and not text.endswith(_TERMINAL) and len(last_line.split()) >= 6 and (text[-1].isalnum() or text[-1] in ",-("):
        return f"ends mid-sentence: …{text[-40:]!r}"
    return None


def rule_length(answer: str, cfg: CurationConfig) -> str | None:
    """Q2: answer length within [answer_min_chars, answer_max_chars]."""
    n = len(answer)
    if n < cfg.answer_min_chars or n > cfg.answer_max_chars:
        return f"{n} chars, expected {cfg.answer_min_chars}-{cfg.answer_max_chars}"
    return None


def rule_refusal(answer: str, cfg: CurationConfig) -> str | None:
    """Q5: refuses where the task should answer (unless `refusal_is_allowed`)."""
    if cfg.refusal_is_allowed:
        return None
    m = _REFUSAL.search(answer[:500])
    return f"refusal phrase {m.group(0)!r}" if m else None


def style_outliers(rows: Sequence[dict[str, Any]], answers: Sequence[str], fence: float) -> dict[int, str]:
    """Q5 (consistent with the rest?): answers whose log length lies beyond `fence` IQRs outside the
    quartiles of their source and slice (Tukey fences), or that use markdown where under 5% of the group does."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.get("source") or "", r.get("slice") or ""), []).append(i)
    out: dict[int, str] = {}
    for (src, sl), idx in groups.items():
        if len(idx) < 20:
            continue
        lengths = np.log1p(np.array([len(answers[i]) for i in idx], dtype=float))
        q1, q3 = np.percentile(lengths, [25, 75])
        lo, hi = q1 - fence * (q3 - q1), q3 + fence * (q3 - q1)
        md = np.array([bool(_MARKDOWN.search(answers[i])) for i in idx])
        md_rare = md.mean() < 0.05
        for j, i in enumerate(idx):
            if q3 > q1 and not lo <= lengths[j] <= hi:
                out[i] = (f"answer length {len(answers[i])} is an outlier in {src}/{sl or '-'} "
                          f"(quartiles {math.expm1(q1):.0f}-{math.expm1(q3):.0f} chars)")
            elif md_rare and md[j]:
                out[i] = f"markdown answer where {md.mean():.0%} of {src}/{sl or '-'} use markdown"
    return out


class RubricStep(Step):
    """The answer format (a break drops); automated rubric proxies (2+ failed drop, exactly 1 flags)."""

    name = "rubric"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        cfg = ctx.config
        answer_format = AnswerFormat.from_config(cfg)
        answers = [final_answer(r["messages"]) for r in rows]
        outliers = style_outliers(rows, answers, cfg.style_outlier_iqr)
        kept = []
        for i, (row, answer) in enumerate(zip(rows, answers, strict=True)):
            failed = {
                "empty_or_degenerate": rule_empty_or_degenerate(answer),
                "truncated": rule_truncated(answer),
                "length_out_of_range": rule_length(answer, cfg),
                "refusal": rule_refusal(answer, cfg),
                "style_outlier": outliers.get(i),
            }
            failed = {k: v for k, v in failed.items() if v}
            details = "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
            if (problem := answer_format.problem(answer)) is not None:
                ctx.drop(row, self.name, ANSWER_FORMAT, f"{ANSWER_FORMAT}: {problem}" + (f"; {details}" if details else ""))
                continue
            if len(failed) >= 2:
                ctx.drop(row, self.name, "+".join(sorted(failed)), details)
                continue
            if failed:
                (rule, detail), = failed.items()
                ctx.flagged.append({"example_id": row["example_id"], "source": row.get("source"), "rule": rule, "detail": detail})
            kept.append(row)
        return kept
