"""ChatML, the canonical form, and the conversions of every format to it and back.

Canonical ChatML is a list of ``{"role", "content"}`` dicts with roles ``system`` (first turn only),
``user``, ``assistant`` and ``tool``. Every reader converts to it (`to_chatml`) and every writer
converts from it (`from_chatml`).

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
"""

from __future__ import annotations

from typing import Any

from flywheel.formats.errors import ConversionError, RowFormatError
from flywheel.formats.names import (
    CHATML,
    EMPTY_MESSAGES,
    EXTRA_KEY_CONFLICT,
    FORMAT_KEYS,
    MALFORMED_TURN,
    MISSING_CONTENT,
    MISSING_MESSAGES,
    MULTI_TURN,
    NOT_AN_OBJECT,
    SHAREGPT,
    TOOL_TURNS,
    TURN_KEYS,
    TURNS_OUT_OF_ORDER,
    check_format,
    check_multi_turn,
)

_CHATML_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
                 "tool": "tool", "function": "tool"}
_SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "bot": "assistant", "chatgpt": "assistant",
    "model": "assistant", "function_call": "assistant",
    "function": "tool", "tool": "tool", "observation": "tool",
}
_SHAREGPT_NAMES = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}
_ALPACA_JOIN = "\n\n"


# --- to ChatML -----------------------------------------------------------------------------------
def extra_keys(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The keys of `row` that are not part of `fmt` (ids, tags ...), in their order."""
    reserved = FORMAT_KEYS[fmt]
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
    check_format(fmt)
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


# --- from ChatML ---------------------------------------------------------------------------------
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
    check_format(fmt)
    check_multi_turn(multi_turn)
    extras = dict(extras or {})
    clash = sorted(set(extras) & FORMAT_KEYS[fmt])
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
