"""flywheel.formats.validate: each reason of validate_messages, the token budget, repetition."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel import formats as F
from flywheel.formats import load_file, validate_messages
from tests.formats.samples import ALPACA_FILE, TOY, conv


def test_token_budget_follows_max_tokens_and_token_counter() -> None:
    roomy = load_file(TOY, max_tokens=100_000)
    assert roomy.rows[4].errors == [F.DEGENERATE_OUTPUT]
    tight = load_file(TOY, max_tokens=60)
    assert F.OVER_TOKEN_BUDGET in tight.rows[1].errors  # the 9-turn conversation
    assert tight.rows[0].ok
    # a counter that sees every byte as a token (like the tiny byte-level tokenizer)
    by_bytes = load_file(TOY, max_tokens=80, token_counter=lambda t: len(t.encode("utf-8")))
    assert F.OVER_TOKEN_BUDGET in by_bytes.rows[0].errors
    assert "tokens > 80" in by_bytes.rows[0].details[F.OVER_TOKEN_BUDGET]


LOOP = "Sure, here you go. " + "I am stuck. " * 200
LIST = "Here are the totals for this month.\n" + "".join(
    f"- Store number {i} in region {i % 3} reported sales.\n" for i in range(40))


@pytest.mark.parametrize(
    ("messages", "errors", "warnings"),
    [
        ("hi", [F.MISSING_MESSAGES], []),
        ([], [F.EMPTY_MESSAGES], []),
        (["hi"], [F.MALFORMED_TURN], []),
        (conv(("user", "q"), ("wizard", "a")), [F.UNKNOWN_ROLE], []),
        ([{"content": "q"}, {"role": "assistant", "content": "a"}], [F.UNKNOWN_ROLE], []),
        ([{"role": "user"}, {"role": "assistant", "content": "a"}], [F.MISSING_CONTENT], []),
        ([{"role": "user", "content": ["q"]}, {"role": "assistant", "content": "a"}], [F.MISSING_CONTENT], []),
        (conv(("system", "s"), ("assistant", "a")), [F.NO_USER_TURN], []),
        (conv(("system", "s"), ("user", "q")), [F.NO_ASSISTANT_TURN], []),
        (conv(("user", "q"), ("assistant", "a"), ("user", "q2")), [F.FINAL_TURN_NOT_ASSISTANT], []),
        (conv(("user", "q"), ("system", "s"), ("assistant", "a")), [F.TURNS_OUT_OF_ORDER], []),
        (conv(("assistant", "hi"), ("user", "q"), ("assistant", "a")), [F.TURNS_OUT_OF_ORDER], []),
        (conv(("user", "q"), ("user", "q"), ("assistant", "a")), [F.TURNS_OUT_OF_ORDER], []),
        (conv(("user", "q"), ("tool", "r"), ("assistant", "a")), [F.TURNS_OUT_OF_ORDER], []),
        (conv(("user", "q"), ("assistant", " \n")), [F.EMPTY_OUTPUT], []),
        (conv(("user", "q"), ("assistant", LOOP)), [F.DEGENERATE_OUTPUT], []),
        (conv(("user", "q"), ("assistant", "ha" * 40)), [F.DEGENERATE_OUTPUT], []),
        (conv(("user", "q"), ("assistant", LIST)), [], [F.REPETITIVE_OUTPUT]),
        (conv(("system", ""), ("user", "q"), ("assistant", "a")), [], [F.EMPTY_TURN]),
        (conv(("user", "q"), ("assistant", "word " * 5000)), [F.DEGENERATE_OUTPUT, F.OVER_TOKEN_BUDGET], []),
        (conv(("system", "s"), ("user", "q"), ("assistant", "call"), ("tool", "r"), ("tool", "r2"),
              ("assistant", "a"), ("user", "q"), ("assistant", "a")), [], []),
    ],
)
def test_validate_messages_reasons(messages: Any, errors: list[str], warnings: list[str]) -> None:
    check = validate_messages(messages)
    assert check.errors == errors
    assert check.warnings == warnings
    assert check.ok == (not errors)
    assert set(check.details) == set(errors) | set(warnings)


def test_reason_names_are_short_snake_case_constants() -> None:
    names = F.ERROR_REASONS + F.WARNING_REASONS
    assert len(set(names)) == len(names)
    assert all(n.replace("_", "").isalpha() and n.islower() for n in names)


def test_natural_text_is_not_repetitive() -> None:
    report = load_file(ALPACA_FILE)
    shares = [F.repetition_share(r.raw["output"]) for r in report.rows]
    assert max(shares) < F.REPETITIVE_REPETITION
    assert F.repetition_share("short") == 0.0
    assert F.repetition_share(LOOP) > F.DEGENERATE_REPETITION


def test_approx_token_count() -> None:
    assert F.approx_token_count("Eat a banana!") == 4
    assert F.approx_token_count("") == 0
    assert F.approx_token_count("日本語のテキスト") >= 6  # no spaces: falls back to bytes / 4
