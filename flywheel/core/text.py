"""Text normalisation, one function per purpose, and the parts of a conversation people compare.

- `input_match_key`: are two *inputs* the same question? (labeling's re-send guard, eval-leak and
  conflict detection). NFKC, case-folded, punctuation dropped, whitespace collapsed.
- `shingle_form`: the surface form near-duplicate shingles and diversity measures are taken from
  (lower-cased, whitespace collapsed; punctuation kept because it is part of the style).
- `answer_match_form`: SQuAD-style answer normalisation for exact match and token F1 (also drops
  English articles).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

_SPACES = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def collapse_spaces(text: str) -> str:
    """Whitespace runs collapsed to one space, stripped."""
    return " ".join(text.split())


def input_match_key(text: str | None) -> str:
    """The key two inputs are compared on: NFKC, case-folded, punctuation dropped, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def shingle_form(text: str, lowercase: bool = True) -> str:
    """Lower-cased (unless told not to), whitespace collapsed: the form shingles are taken from."""
    return " ".join((text.lower() if lowercase else text).split())


def answer_match_form(text: str | None) -> str:
    """Normalise an answer for matching: NFKC, lower case, no punctuation, no English articles."""
    lowered = unicodedata.normalize("NFKC", text or "").lower()
    lowered = _NOT_WORD.sub(" ", lowered)
    lowered = _ARTICLES.sub(" ", lowered)
    return _SPACES.sub(" ", lowered).strip()


def last_user_text(messages: Sequence[dict[str, Any]] | None) -> str:
    """The content of the last user turn ('' when there is none)."""
    for m in reversed(messages or ()):
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


def user_text(messages: Sequence[dict[str, Any]] | None) -> str:
    """Every non-empty user turn, joined by newlines."""
    return "\n".join(m["content"] for m in (messages or ()) if m.get("role") == "user" and m.get("content"))


def final_answer(messages: Sequence[dict[str, Any]] | None) -> str:
    """The final assistant turn's content ('' when the conversation does not end with one)."""
    if messages and messages[-1].get("role") == "assistant":
        return messages[-1].get("content") or ""
    return ""
