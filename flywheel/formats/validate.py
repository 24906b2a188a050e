"""Per-row validation of canonical ChatML for training use: named reasons, token budget, repetition.

Errors make a row unusable for training; warnings mark a usable but suspicious row (reason codes in
`flywheel.formats.names`):

- errors: invalid_json, not_an_object, missing_messages, empty_messages, malformed_turn,
  unknown_role, missing_content, no_user_turn, no_assistant_turn, turns_out_of_order (a system turn
  after the first, a conversation not starting with the user, two user or two assistant turns in a
  row, a tool turn not after an assistant turn), final_turn_not_assistant, empty_output,
  degenerate_output and over_token_budget. Degenerate outputs and rows over the budget are errors
  because training on them teaches loops or gets truncated mid-answer.
- warnings: empty_turn (an empty non-final turn) and repetitive_output (heavy repetition below the
  degenerate bar, e.g. a templated list).

Token counts are approximate unless a ``token_counter`` is given: per turn the larger of the number
of words plus punctuation marks and UTF-8 bytes / 4, plus 4 tokens per turn for the role markers and
2 for the reply. Repetition is measured in O(n) as the share of repeated word 4-grams
(``1 - distinct / total``; 16-character windows for text with few spaces) of the final answer: a
phrase repeated k times scores about 1 - 1/k. At least `DEGENERATE_REPETITION` is an error, at
least `REPETITIVE_REPETITION` a warning; the 999 Alpaca demo answers stay below 0.25.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel.core.text import collapse_spaces
from flywheel.formats.chatml import extra_keys, to_chatml
from flywheel.formats.detect import detect_row_format
from flywheel.formats.errors import RowFormatError
from flywheel.formats.names import (
    DEFAULT_MAX_TOKENS,
    DEGENERATE_OUTPUT,
    EMPTY_MESSAGES,
    EMPTY_OUTPUT,
    EMPTY_TURN,
    FINAL_TURN_NOT_ASSISTANT,
    MALFORMED_TURN,
    MISSING_CONTENT,
    MISSING_MESSAGES,
    NO_ASSISTANT_TURN,
    NO_USER_TURN,
    OVER_TOKEN_BUDGET,
    REPETITIVE_OUTPUT,
    ROLES,
    TURNS_OUT_OF_ORDER,
    UNKNOWN_ROLE,
)

# repetition thresholds (share of repeated word 4-grams, or 16-character windows, of the final answer)
DEGENERATE_REPETITION = 0.8
REPETITIVE_REPETITION = 0.5
REPETITION_MIN_CHARS = 64
REPETITION_WORDS = 4  # word n-gram size (the zip in repetition_share takes 4 slices)
REPETITION_WINDOW = 16  # character window for text with few spaces
_CHARS_PER_WORD_MAX = 8  # English averages about 6 characters per word and space
TOKENS_PER_TURN = 4
TOKENS_PER_REPLY = 2

_NEXT_ROLES = {
    None: ("user",),  # after the optional system turn the user speaks first
    "user": ("assistant",),
    "assistant": ("user", "tool"),
    "tool": ("tool", "assistant"),
}
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


# --- results ---------------------------------------------------------------------------------------
@dataclass
class MessageCheck:
    """Reasons found in one conversation: `errors` make it unusable, `warnings` are worth a look."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)  # reason -> first detail

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, reason: str, detail: str) -> None:
        if reason not in self.errors:
            self.errors.append(reason)
            self.details[reason] = detail

    def warn(self, reason: str, detail: str) -> None:
        if reason not in self.warnings:
            self.warnings.append(reason)
            self.details[reason] = detail


@dataclass
class RowResult:
    """One row of a file: where it was, what it said, its canonical messages when usable, its reasons."""

    index: int  # 0-based position among the file's rows
    line: int | None  # 1-based line for JSONL files, None in JSON arrays
    raw: Any  # the parsed row (the line's text when it was not JSON)
    messages: list[dict[str, Any]] | None = None  # canonical ChatML; None unless the row is ok
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # keys of the row outside its format

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"row {self.index + 1}"

    def snippet(self, width: int = 60) -> str:
        """The start of the row as written, on one line."""
        fmt = detect_row_format(self.raw)
        try:
            turns = to_chatml(self.raw, fmt) if fmt else None
        except RowFormatError:
            turns = None
        if turns:
            text = " | ".join(f"{m.get('role')}: {m.get('content')}" for m in turns if m.get("role") != "system")
        elif isinstance(self.raw, str):
            text = self.raw
        else:
            text = json.dumps(self.raw, ensure_ascii=False, default=str)
        return _snippet(text, width)


# --- checks ----------------------------------------------------------------------------------------
def approx_token_count(text: str) -> int:
    """Approximate tokens of `text`: the larger of words + punctuation marks and UTF-8 bytes / 4."""
    n_bytes = len(text.encode("utf-8"))
    return max(len(_TOKEN_RE.findall(text)), (n_bytes + 3) // 4)


def repetition_share(text: str) -> float:
    """Share (0-1) of the word 4-grams of `text` that repeat an earlier one; O(n), 0 for short texts.

    Text with few spaces (CJK, "hahaha...") uses 16-character windows instead of words.
    """
    s = text.strip()
    if len(s) < REPETITION_MIN_CHARS:
        return 0.0
    words = s.split()
    if len(s) > _CHARS_PER_WORD_MAX * len(words) or len(words) < REPETITION_WORDS + 8:
        k = REPETITION_WINDOW
        total = len(s) - k + 1
        return 1.0 - len({s[i:i + k] for i in range(total)}) / total
    total = len(words) - REPETITION_WORDS + 1
    return 1.0 - len(set(zip(words, words[1:], words[2:], words[3:], strict=False))) / total


def _snippet(text: str, width: int = 40) -> str:
    text = collapse_spaces(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def validate_messages(
    messages: Any,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    token_counter: Callable[[str], int] | None = None,
) -> MessageCheck:
    """Check one canonical ChatML conversation for training use; returns its errors and warnings."""
    check = MessageCheck()
    if not isinstance(messages, list):
        check.error(MISSING_MESSAGES, f"messages is {type(messages).__name__}, not a list")
        return check
    if not messages:
        check.error(EMPTY_MESSAGES, "no turns")
        return check
    roles: list[Any] = []
    contents_ok = True
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            check.error(MALFORMED_TURN, f"turn {i + 1} is {type(msg).__name__}, not an object")
            return check
        role = msg.get("role")
        roles.append(role)
        if role not in ROLES:
            check.error(UNKNOWN_ROLE, f"turn {i + 1} has role {role!r}")
        content = msg.get("content")
        if not isinstance(content, str):
            contents_ok = False
            what = "no content" if content is None else f"{type(content).__name__} content"
            check.error(MISSING_CONTENT, f"turn {i + 1} ({role}) has {what}")
    if UNKNOWN_ROLE in check.errors:
        return check  # order and presence checks would only echo the unknown role
    last = len(messages) - 1
    has_user = "user" in roles
    has_assistant = "assistant" in roles
    if not has_user:
        check.error(NO_USER_TURN, "no turn has role 'user'")
    if not has_assistant:
        check.error(NO_ASSISTANT_TURN, "no turn has role 'assistant'")
    if has_user:
        prev: str | None = None
        for i, role in enumerate(roles):
            if role == "system" and i == 0:
                continue
            if role not in _NEXT_ROLES[prev]:
                after = f"after {prev!r}" if prev else "at the start"
                check.error(TURNS_OUT_OF_ORDER, f"turn {i + 1} ({role}) {after}")
                break
            prev = role
    if has_assistant and roles[last] != "assistant":
        check.error(FINAL_TURN_NOT_ASSISTANT, f"the last turn is from {roles[last]!r}")
    if not contents_ok:
        return check
    for i, msg in enumerate(messages[:last]):
        if not msg["content"].strip():
            check.warn(EMPTY_TURN, f"turn {i + 1} ({msg['role']}) is empty")
            break
    if roles[last] == "assistant":
        answer = messages[last]["content"]
        if not answer.strip():
            check.error(EMPTY_OUTPUT, "the final answer is empty")
        else:
            share = repetition_share(answer)
            if share >= DEGENERATE_REPETITION:
                check.error(DEGENERATE_OUTPUT, f"{share:.0%} of the answer repeats itself: {_snippet(answer)!r}")
            elif share >= REPETITIVE_REPETITION:
                check.warn(REPETITIVE_OUTPUT, f"{share:.0%} of the answer repeats itself: {_snippet(answer)!r}")
    budget_left = max_tokens - TOKENS_PER_REPLY - TOKENS_PER_TURN * len(messages)
    if token_counter is None:
        # approx_token_count(t) <= len(t) characters: short conversations need no counting
        if sum(len(m["content"]) for m in messages) > budget_left:
            used = sum(approx_token_count(m["content"]) for m in messages)
            if used > budget_left:
                total = used + max_tokens - budget_left
                check.error(OVER_TOKEN_BUDGET, f"about {total} tokens > {max_tokens}")
    else:
        used = sum(token_counter(m["content"]) for m in messages)
        if used > budget_left:
            check.error(OVER_TOKEN_BUDGET, f"{used + max_tokens - budget_left} tokens > {max_tokens}")
    return check


def validate_row(
    row: Any,
    fmt: str,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    token_counter: Callable[[str], int] | None = None,
    *,
    index: int = 0,
    line: int | None = None,
) -> RowResult:
    """Convert one row of `fmt` to ChatML and validate it."""
    result = RowResult(index=index, line=line, raw=row)
    try:
        messages = to_chatml(row, fmt)
    except RowFormatError as exc:
        result.errors.append(exc.reason)
        result.details[exc.reason] = exc.detail
        return result
    result.extras = extra_keys(row, fmt)
    check = validate_messages(messages, max_tokens, token_counter)
    result.errors, result.warnings, result.details = check.errors, check.warnings, check.details
    if check.ok:
        result.messages = messages
    return result
