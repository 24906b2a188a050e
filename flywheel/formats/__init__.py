"""ChatML, ShareGPT and Alpaca: read, detect, validate per row (named reasons), convert through ChatML.

Canonical form is ChatML: a list of ``{"role", "content"}`` dicts with roles ``system`` (first turn
only), ``user``, ``assistant`` and ``tool``. Every reader converts to it (`to_chatml`) and every
writer converts from it (`from_chatml`).

Formats (one per file; a file mixing them is refused with `MixedFormatError`):

- ``chatml``: ``{"messages": [{"role", "content", ...}], ...}``. Role aliases ``developer`` ->
  system and ``function`` -> tool. Extra keys of a message (``name``, ``weight`` ...) are kept.
- ``sharegpt``: ``{"conversations": [{"from", "value", ...}], "system"?: str, ...}``. ``from``
  aliases: human/user -> user; gpt/assistant/bot/chatgpt/model/function_call -> assistant;
  system -> system; function/tool/observation -> tool. Turns written as ``role``/``content`` are
  read too. Written back with the names human/gpt/system/observation (so ``function_call`` comes
  back as ``gpt``), a system prompt as the first turn. Extra keys of a turn are kept.
- ``alpaca``: ``{"instruction", "input", "output", "system"?, "history"?: [[user, assistant], ...]}``
  (the LLaMA-Factory shape). The user turn is ``instruction`` and, when ``input`` is not empty,
  ``instruction + "\\n\\n" + input``. Written back with the whole user turn in ``instruction`` and an
  empty ``input``: the conversation (what the model trains on) round-trips exactly, the
  instruction/input split does not.

Keys of a row that are not part of its format (``id``, ``generator``, ``slice`` ...) are kept as
sibling keys through every conversion. A conversion that would lose information is refused
(`ConversionError`) unless the caller says how: multi-turn conversations to Alpaca need
``multi_turn="history" | "last" | "split"`` ("history" keeps a system prompt too, as LLaMA-Factory
reads ``system`` with ``history``); tool turns and per-turn extra keys cannot go to Alpaca.
Files are JSONL or one JSON array (told apart by content); `write_rows` writes a JSON array for a
``.json`` target, else JSONL, atomically.

Validation (per row, named reasons in the module constants below). Errors make a row unusable for
training; warnings mark a usable but suspicious row:

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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flywheel.core.storage import write_jsonl, write_text

# --- names -----------------------------------------------------------------------------------
CHATML = "chatml"
SHAREGPT = "sharegpt"
ALPACA = "alpaca"
FORMATS: tuple[str, ...] = (CHATML, SHAREGPT, ALPACA)
FormatName = Literal["chatml", "sharegpt", "alpaca"]
MultiTurn = Literal["refuse", "history", "last", "split"]
MULTI_TURN_POLICIES: tuple[str, ...] = ("refuse", "history", "last", "split")

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
DEFAULT_MAX_TOKENS = 4096

# row errors (the row is unusable)
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_MESSAGES = "missing_messages"
EMPTY_MESSAGES = "empty_messages"
MALFORMED_TURN = "malformed_turn"
UNKNOWN_ROLE = "unknown_role"
MISSING_CONTENT = "missing_content"
NO_USER_TURN = "no_user_turn"
NO_ASSISTANT_TURN = "no_assistant_turn"
TURNS_OUT_OF_ORDER = "turns_out_of_order"
FINAL_TURN_NOT_ASSISTANT = "final_turn_not_assistant"
EMPTY_OUTPUT = "empty_output"
DEGENERATE_OUTPUT = "degenerate_output"
OVER_TOKEN_BUDGET = "over_token_budget"
ERROR_REASONS: tuple[str, ...] = (
    INVALID_JSON, NOT_AN_OBJECT, MISSING_MESSAGES, EMPTY_MESSAGES, MALFORMED_TURN, UNKNOWN_ROLE,
    MISSING_CONTENT, NO_USER_TURN, NO_ASSISTANT_TURN, TURNS_OUT_OF_ORDER, FINAL_TURN_NOT_ASSISTANT,
    EMPTY_OUTPUT, DEGENERATE_OUTPUT, OVER_TOKEN_BUDGET,
)
# row warnings (usable but suspicious)
EMPTY_TURN = "empty_turn"
REPETITIVE_OUTPUT = "repetitive_output"
WARNING_REASONS: tuple[str, ...] = (EMPTY_TURN, REPETITIVE_OUTPUT)

# conversion refusals (the target format cannot carry the row)
MULTI_TURN = "multi_turn"
TOOL_TURNS = "tool_turns"
TURN_KEYS = "turn_keys"
EXTRA_KEY_CONFLICT = "extra_key_conflict"

# repetition thresholds (share of repeated 16-character windows of the final answer)
DEGENERATE_REPETITION = 0.8
REPETITIVE_REPETITION = 0.5
REPETITION_MIN_CHARS = 64
REPETITION_WORDS = 4  # word n-gram size (the zip in repetition_share takes 4 slices)
REPETITION_WINDOW = 16  # character window for text with few spaces
_CHARS_PER_WORD_MAX = 8  # English averages about 6 characters per word and space
TOKENS_PER_TURN = 4
TOKENS_PER_REPLY = 2

_CHATML_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
                 "tool": "tool", "function": "tool"}
_SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "bot": "assistant", "chatgpt": "assistant",
    "model": "assistant", "function_call": "assistant",
    "function": "tool", "tool": "tool", "observation": "tool",
}
_SHAREGPT_NAMES = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}
_FORMAT_KEYS: dict[str, frozenset[str]] = {
    CHATML: frozenset({"messages"}),
    SHAREGPT: frozenset({"conversations", "system"}),
    ALPACA: frozenset({"instruction", "input", "output", "system", "history"}),
}
_ALPACA_JOIN = "\n\n"
_NEXT_ROLES = {
    None: ("user",),  # after the optional system turn the user speaks first
    "user": ("assistant",),
    "assistant": ("user", "tool"),
    "tool": ("tool", "assistant"),
}
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


# --- errors ----------------------------------------------------------------------------------
class FormatFileError(ValueError):
    """A file that cannot be read as a dataset at all (unreadable, not JSON, empty, wrong format)."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


class MixedFormatError(FormatFileError):
    """A file whose rows are in more than one format; `first_rows` maps format -> first row (1-based)."""

    def __init__(self, path: str | Path, first_rows: dict[str, int], unit: str = "row") -> None:
        self.first_rows = dict(first_rows)
        listing = ", ".join(f"{fmt} first at {unit} {n}" for fmt, n in self.first_rows.items())
        super().__init__(path, f"mixes formats ({listing}); one format per dataset, split the file")


class RowFormatError(ValueError):
    """A row that cannot be read as a conversation of its format."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class ConversionError(ValueError):
    """A conversion the target format cannot carry without losing information."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


# --- results ---------------------------------------------------------------------------------
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


@dataclass
class FileReport:
    """All rows of one file with their reasons."""

    path: str
    format: str
    rows: list[RowResult]

    @property
    def valid_rows(self) -> list[RowResult]:
        return [r for r in self.rows if r.ok]

    @property
    def invalid_rows(self) -> list[RowResult]:
        return [r for r in self.rows if not r.ok]

    def summary(self) -> dict[str, Any]:
        """format, rows, valid, invalid and per-reason counts of errors and warnings."""
        errors: Counter[str] = Counter()
        warnings: Counter[str] = Counter()
        valid = 0
        for r in self.rows:
            errors.update(r.errors)
            warnings.update(r.warnings)
            valid += r.ok
        return {
            "path": self.path,
            "format": self.format,
            "rows": len(self.rows),
            "valid": valid,
            "invalid": len(self.rows) - valid,
            "errors": dict(errors.most_common()),
            "warnings": dict(warnings.most_common()),
        }


# --- detection -------------------------------------------------------------------------------
def detect_row_format(row: Any) -> str | None:
    """The format one row is written in, or None when it is not an object of a known shape."""
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        return CHATML
    if "conversations" in row:
        return SHAREGPT
    if "instruction" in row or ("output" in row and "input" in row):
        return ALPACA
    return None


def detect_format(rows: Iterable[Any], path: str | Path = "<rows>", lines: Sequence[int | None] | None = None) -> str:
    """The one format of `rows`; `MixedFormatError` when they mix formats, `FormatFileError` when none is known."""
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        fmt = detect_row_format(row)
        if fmt is not None and fmt not in first:
            line = lines[i] if lines is not None else None
            first[fmt] = line if line is not None else i + 1
    if len(first) > 1:
        unit = "line" if lines is not None and any(x is not None for x in lines) else "row"
        raise MixedFormatError(path, first, unit=unit)
    if not first:
        raise FormatFileError(path, "no row is in a known format (ChatML `messages`, ShareGPT "
                                    "`conversations` or Alpaca `instruction`/`output`)")
    return next(iter(first))


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


# --- to ChatML -------------------------------------------------------------------------------
def extra_keys(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The keys of `row` that are not part of `fmt` (ids, tags ...), in their order."""
    reserved = _FORMAT_KEYS[fmt]
    return {k: v for k, v in row.items() if k not in reserved}


def _role(value: Any, aliases: dict[str, str]) -> Any:
    if isinstance(value, str):
        return aliases.get(value.strip().lower(), value)
    return value


def to_chatml(row: Any, fmt: str) -> list[dict[str, Any]]:
    """The conversation of one row of `fmt` as canonical ChatML messages.

    Roles are normalised (aliases mapped); unknown roles and non-string contents are kept as they are
    so that `validate_messages` names them. Raises `RowFormatError` when the row holds no conversation.
    """
    _check_format(fmt)
    if not isinstance(row, dict):
        raise RowFormatError(NOT_AN_OBJECT, f"row is {type(row).__name__}, not an object")
    if fmt == CHATML:
        return _chatml_to_chatml(row)
    if fmt == SHAREGPT:
        return _sharegpt_to_chatml(row)
    return _alpaca_to_chatml(row)


def _turn_list(row: dict[str, Any], key: str) -> list[Any]:
    if key not in row:
        raise RowFormatError(MISSING_MESSAGES, f"row has no `{key}`")
    turns = row[key]
    if not isinstance(turns, list):
        raise RowFormatError(MISSING_MESSAGES, f"`{key}` is {type(turns).__name__}, not a list")
    if not turns:
        raise RowFormatError(EMPTY_MESSAGES, f"`{key}` is empty")
    return turns


def _chatml_to_chatml(row: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, turn in enumerate(_turn_list(row, "messages")):
        if not isinstance(turn, dict):
            raise RowFormatError(MALFORMED_TURN, f"turn {i + 1} is {type(turn).__name__}, not an object")
        msg = dict(turn)
        msg["role"] = _role(turn.get("role"), _CHATML_ROLES)
        msg["content"] = turn.get("content")
        out.append(msg)
    return out


def _sharegpt_to_chatml(row: dict[str, Any]) -> list[dict[str, Any]]:
    turns = _turn_list(row, "conversations")
    out: list[dict[str, Any]] = []
    system = _system_prompt(row)
    if system:
        out.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowFormatError(MALFORMED_TURN, f"turn {i + 1} is {type(turn).__name__}, not an object")
        speaker_key = "from" if "from" in turn or "role" not in turn else "role"
        text_key = "value" if "value" in turn or "content" not in turn else "content"
        msg = {"role": _role(turn.get(speaker_key), _SHAREGPT_ROLES), "content": turn.get(text_key)}
        msg.update((k, v) for k, v in turn.items() if k not in (speaker_key, text_key))
        out.append(msg)
    return out


def _system_prompt(row: dict[str, Any]) -> str | None:
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise RowFormatError(MISSING_CONTENT, f"`system` is {type(system).__name__}, not a string")
    return system


def _alpaca_to_chatml(row: dict[str, Any]) -> list[dict[str, Any]]:
    if "instruction" not in row and "input" not in row:
        raise RowFormatError(MISSING_MESSAGES, "row has no `instruction`")
    out: list[dict[str, Any]] = []
    system = _system_prompt(row)
    if system:
        out.append({"role": "system", "content": system})
    history = row.get("history")
    if history is not None:
        if not isinstance(history, list):
            raise RowFormatError(MALFORMED_TURN, f"`history` is {type(history).__name__}, not a list")
        for i, pair in enumerate(history):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise RowFormatError(MALFORMED_TURN, f"history entry {i + 1} is not a [user, assistant] pair")
            out.append({"role": "user", "content": pair[0]})
            out.append({"role": "assistant", "content": pair[1]})
    instruction = row.get("instruction", "")
    extra_input = row.get("input")
    if isinstance(instruction, str) and isinstance(extra_input, str) and extra_input:
        prompt: Any = f"{instruction}{_ALPACA_JOIN}{extra_input}" if instruction else extra_input
    elif extra_input is None or extra_input == "":
        prompt = instruction
    else:
        prompt = None if not isinstance(instruction, str) else extra_input  # non-string parts: missing_content
    out.append({"role": "user", "content": prompt})
    if "output" in row:
        out.append({"role": "assistant", "content": row["output"]})
    return out


# --- validation ------------------------------------------------------------------------------
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
    text = " ".join(text.split())
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


# --- reading files ---------------------------------------------------------------------------
def _parse_file(path: Path) -> tuple[list[Any], list[int | None], list[tuple[int, str]]]:
    """Rows, their 1-based lines (None in JSON arrays) and the JSONL lines that were not JSON."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatFileError(path, f"not valid UTF-8 (byte {exc.start})", line=line) from exc
    stripped = text.lstrip()
    if not stripped:
        raise FormatFileError(path, "empty file")
    if stripped[0] == "[":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": JSONL whose lines are arrays, read below
                raise FormatFileError(path, f"not a valid JSON array (truncated?): {exc.msg} at column {exc.colno}",
                                      line=exc.lineno) from exc
        else:
            if not rows:
                raise FormatFileError(path, "empty JSON array")
            return rows, [None] * len(rows), []
    rows, lines, bad = [], [], []
    for number, line_text in enumerate(text.splitlines(), start=1):
        if not line_text.strip():
            continue
        try:
            rows.append(json.loads(line_text))
        except json.JSONDecodeError:
            rows.append(_BAD_JSON)
            bad.append((len(rows) - 1, line_text))
        lines.append(number)
    if bad and len(bad) == len(rows):
        try:  # a pretty-printed single JSON value is not a dataset
            whole = json.loads(text)
        except json.JSONDecodeError:
            raise FormatFileError(path, "no line is valid JSON (expected JSONL or a JSON array)") from None
        raise FormatFileError(path, f"a single JSON {type(whole).__name__}; expected a JSON array or JSONL")
    return rows, lines, bad


_BAD_JSON = object()


def load_file(
    path: str | Path,
    fmt: str = "auto",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    token_counter: Callable[[str], int] | None = None,
) -> FileReport:
    """Read a JSONL file or a JSON array in one of the formats, detect the format and validate every row.

    Raises `FormatFileError` for an unreadable, empty, truncated or wrongly-typed file and
    `MixedFormatError` for a file that mixes formats; bad JSONL lines are rows with `invalid_json`.
    """
    path = Path(path)
    if fmt != "auto":
        _check_format(fmt)
    rows, lines, bad = _parse_file(path)
    detected: str | None
    try:
        detected = detect_format(rows, path, lines)
    except MixedFormatError:
        raise
    except FormatFileError:
        if fmt == "auto":
            raise
        detected = None
    if fmt != "auto" and detected is not None and detected != fmt:
        raise FormatFileError(path, f"rows are {detected}, not {fmt}")
    file_fmt = fmt if fmt != "auto" else detected
    assert file_fmt is not None
    bad_lines = dict(bad)
    results: list[RowResult] = []
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        if row is _BAD_JSON:
            r = RowResult(index=i, line=line, raw=bad_lines[i], errors=[INVALID_JSON],
                          details={INVALID_JSON: "the line is not valid JSON"})
        else:
            r = validate_row(row, file_fmt, max_tokens, token_counter, index=i, line=line)
        results.append(r)
    return FileReport(path=str(path), format=file_fmt, rows=results)


# --- from ChatML -----------------------------------------------------------------------------
def _pairs(body: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [(body[i]["content"], body[i + 1]["content"]) for i in range(0, len(body) - 1, 2)]


def from_chatml(
    messages: list[dict[str, Any]],
    fmt: str,
    extras: dict[str, Any] | None = None,
    multi_turn: str = "refuse",
) -> dict[str, Any]:
    """One row of `fmt` holding `messages` (canonical ChatML) and the sibling keys `extras`.

    Raises `ConversionError` when `fmt` cannot carry the conversation without loss; for Alpaca,
    `multi_turn` says what to do with earlier turns: "history" keeps them in `history`, "last" drops
    them ("split" is only for `from_chatml_rows`).
    """
    rows = from_chatml_rows(messages, fmt, extras, "refuse" if multi_turn == "split" else multi_turn)
    return rows[0]


def from_chatml_rows(
    messages: list[dict[str, Any]],
    fmt: str,
    extras: dict[str, Any] | None = None,
    multi_turn: str = "refuse",
) -> list[dict[str, Any]]:
    """Rows of `fmt` for one conversation: one row, or one per exchange with Alpaca's `multi_turn="split"`."""
    _check_format(fmt)
    if multi_turn not in MULTI_TURN_POLICIES:
        raise ValueError(f"unknown multi_turn policy {multi_turn!r}; expected one of {MULTI_TURN_POLICIES}")
    extras = dict(extras or {})
    clash = sorted(set(extras) & _FORMAT_KEYS[fmt])
    if clash:
        raise ConversionError(EXTRA_KEY_CONFLICT, f"extra keys {clash} are keys of {fmt}")
    if fmt == CHATML:
        return [{**extras, "messages": [dict(m) for m in messages]}]
    if fmt == SHAREGPT:
        turns = []
        for m in messages:
            turn = {"from": _SHAREGPT_NAMES.get(m["role"], m["role"]), "value": m["content"]}
            turn.update((k, v) for k, v in m.items() if k not in ("role", "content"))
            turns.append(turn)
        return [{**extras, "conversations": turns}]
    return _to_alpaca(messages, extras, multi_turn)


def _to_alpaca(messages: list[dict[str, Any]], extras: dict[str, Any], multi_turn: str) -> list[dict[str, Any]]:
    keyed = sorted({k for m in messages for k in m if k not in ("role", "content")})
    if keyed:
        raise ConversionError(TURN_KEYS, f"Alpaca cannot carry the turn keys {keyed}")
    if any(m["role"] == "tool" for m in messages):
        raise ConversionError(TOOL_TURNS, "Alpaca cannot carry tool turns")
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    body = messages[1:] if system is not None else messages
    if len(body) < 2 or len(body) % 2 or any(
        m["role"] != ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(body)
    ):
        raise ConversionError(TURNS_OUT_OF_ORDER, "Alpaca needs alternating user/assistant turns ending with the assistant")
    pairs = _pairs(body)
    if len(pairs) > 1 and multi_turn == "refuse":
        raise ConversionError(MULTI_TURN, f"{len(pairs)} exchanges; choose --multi-turn history|last|split")

    def row(pair: tuple[Any, Any], history: list[tuple[Any, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {**extras, "instruction": pair[0], "input": "", "output": pair[1]}
        if system is not None:
            out["system"] = system
        if history:
            out["history"] = [list(p) for p in history]
        return out

    if multi_turn == "split":
        return [row(p, []) for p in pairs]
    if multi_turn == "last":
        return [row(pairs[-1], [])]
    return [row(pairs[-1], pairs[:-1])]


# --- converting files ------------------------------------------------------------------------
@dataclass
class ConversionReport:
    """What `convert_file` read, wrote and left out (invalid rows, with their reasons)."""

    source: FileReport
    target: str
    to: str
    written: int
    rows_out: int  # output rows (more than `written` source rows when split)

    @property
    def skipped(self) -> list[RowResult]:
        return self.source.invalid_rows

    def summary(self) -> dict[str, Any]:
        return {**self.source.summary(), "to": self.to, "target": self.target,
                "written": self.written, "rows_out": self.rows_out, "skipped": len(self.skipped)}


class ConversionRefused(ValueError):
    """A file conversion refused as a whole: rows the target cannot carry; `reasons` counts them."""

    def __init__(self, path: str, to: str, reasons: dict[str, int], first: dict[str, str]) -> None:
        self.path, self.to, self.reasons, self.first = path, to, reasons, first
        parts = "; ".join(f"{n} rows {reason} (first at {first[reason]})" for reason, n in reasons.items())
        hint = " Pass --multi-turn history|last|split to say how." if MULTI_TURN in reasons else ""
        super().__init__(f"{path}: cannot convert to {to} without losing information: {parts}.{hint}")


def convert_report(report: FileReport, to: str, multi_turn: str = "refuse") -> list[dict[str, Any]]:
    """Output rows of `to` for the valid rows of `report`; `ConversionRefused` if any row would lose data."""
    _check_format(to)
    out: list[dict[str, Any]] = []
    refused: Counter[str] = Counter()
    first: dict[str, str] = {}
    for r in report.valid_rows:
        assert r.messages is not None
        try:
            out.extend(from_chatml_rows(r.messages, to, r.extras, multi_turn))
        except ConversionError as exc:
            refused[exc.reason] += 1
            first.setdefault(exc.reason, f"{r.where}: {exc.detail}")
    if refused:
        raise ConversionRefused(report.path, to, dict(refused), first)
    return out


def write_rows(rows: list[dict[str, Any]], target: str | Path) -> Path:
    """Write rows atomically: a JSON array for a `.json` target, else JSONL."""
    target = Path(target)
    if target.suffix.lower() == ".json":
        return write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", target)
    return write_jsonl(rows, target)


def convert_file(
    path: str | Path,
    target: str | Path,
    to: str,
    fmt: str = "auto",
    multi_turn: str = "refuse",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    token_counter: Callable[[str], int] | None = None,
) -> ConversionReport:
    """Convert a file to `to`, writing only valid rows (atomically); nothing is written when refused."""
    report = load_file(path, fmt, max_tokens, token_counter)
    rows = convert_report(report, to, multi_turn)
    write_rows(rows, target)
    return ConversionReport(source=report, target=str(target), to=to,
                            written=len(report.valid_rows), rows_out=len(rows))


# --- chat template ---------------------------------------------------------------------------
@dataclass
class TemplateCheck:
    """Whether a tokenizer's chat template renders a conversation so that training = inference."""

    ok: bool
    problems: list[str]
    rendered: str
    prompt: str


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def render_with_template(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
    """The text `tokenizer.apply_chat_template` makes of `messages` (roles and contents only)."""
    text = tokenizer.apply_chat_template(_plain(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, not str")
    return text


def check_template_round_trip(tokenizer: Any, messages: list[dict[str, Any]]) -> TemplateCheck:
    """Render `messages` (ending with the assistant) and check the template round trip.

    The rendering holds every turn's content in order; the prompt (all but the final answer, with
    the generation prompt) is a prefix of the full rendering; encoding then decoding gives the
    same text.
    """
    problems: list[str] = []
    rendered = render_with_template(tokenizer, messages)
    pos = 0
    for i, m in enumerate(messages):
        found = rendered.find(m["content"], pos)
        if found < 0:
            problems.append(f"turn {i + 1} ({m['role']}) content missing or out of order in the rendering")
            break
        pos = found + len(m["content"])
    prompt = ""
    if messages and messages[-1]["role"] == "assistant":
        prompt = render_with_template(tokenizer, messages[:-1], add_generation_prompt=True)
        if not rendered.startswith(prompt):
            problems.append("the generation prompt is not a prefix of the full rendering")
    else:
        problems.append("the last turn is not from the assistant")
    ids = tokenizer.encode(rendered, add_special_tokens=False, verbose=False)
    decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if decoded != rendered:
        problems.append("tokenize then decode does not give the rendered text back")
    return TemplateCheck(ok=not problems, problems=problems, rendered=rendered, prompt=prompt)


def load_tokenizer(name: str) -> Any:
    """A tokenizer with a chat template: `tiny` (the built-in test tokenizer) or a local folder or hub
    id that `transformers.AutoTokenizer` reads."""
    if name == "tiny":
        from flywheel.models.base import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def tokenizer_counter(tokenizer: Any) -> Callable[[str], int]:
    """A `token_counter` for `validate_messages` / `load_file`: exact token counts of `tokenizer`."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False, verbose=False))


def check_template_file(tokenizer: Any, report: FileReport) -> dict[str, Any]:
    """`check_template_round_trip` on every valid row of `report`: rows checked, rows failed, and per
    problem its count and first row."""
    problems: Counter[str] = Counter()
    first: dict[str, str] = {}
    failed = 0
    valid = report.valid_rows
    for r in valid:
        assert r.messages is not None
        check = check_template_round_trip(tokenizer, r.messages)
        failed += not check.ok
        for problem in check.problems:
            problems[problem] += 1
            first.setdefault(problem, r.where)
    return {"checked": len(valid), "failed": failed, "problems": dict(problems.most_common()), "first": first}
