"""The names formats are spoken in: format names, roles, multi-turn policies and the per-row reason codes.

Errors make a row unusable for training; warnings mark a usable but suspicious row; refusals name
what a target format cannot carry (see `flywheel.formats.validate` and `flywheel.formats.chatml`).
"""

from __future__ import annotations

from typing import Literal

from flywheel.core.errors import InputError

# --- formats -----------------------------------------------------------------------------------
CHATML = "chatml"
SHAREGPT = "sharegpt"
ALPACA = "alpaca"
FORMATS: tuple[str, ...] = (CHATML, SHAREGPT, ALPACA)
FormatName = Literal["chatml", "sharegpt", "alpaca"]
MultiTurn = Literal["refuse", "history", "last", "split"]
MULTI_TURN_POLICIES: tuple[str, ...] = ("refuse", "history", "last", "split")

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
DEFAULT_MAX_TOKENS = 4096

# the keys of a row that belong to its format (every other key is kept as a sibling key)
FORMAT_KEYS: dict[str, frozenset[str]] = {
    CHATML: frozenset({"messages"}),
    SHAREGPT: frozenset({"conversations", "system"}),
    ALPACA: frozenset({"instruction", "input", "output", "system", "history"}),
}

# --- row errors (the row is unusable) ----------------------------------------------------------
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

# --- row warnings (usable but suspicious) ------------------------------------------------------
EMPTY_TURN = "empty_turn"
REPETITIVE_OUTPUT = "repetitive_output"
WARNING_REASONS: tuple[str, ...] = (EMPTY_TURN, REPETITIVE_OUTPUT)

# --- conversion refusals (the target format cannot carry the row) ------------------------------
MULTI_TURN = "multi_turn"
TOOL_TURNS = "tool_turns"
TURN_KEYS = "turn_keys"
EXTRA_KEY_CONFLICT = "extra_key_conflict"


def check_format(fmt: str) -> None:
    """Raise `InputError` unless `fmt` is one of `FORMATS`."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def check_multi_turn(policy: str) -> None:
    """Raise `InputError` unless `policy` is one of `MULTI_TURN_POLICIES`."""
    if policy not in MULTI_TURN_POLICIES:
        raise InputError(f"unknown multi_turn policy {policy!r}; expected one of {MULTI_TURN_POLICIES}")
