"""flywheel.formats.errors: one family under flywheel's error base, still caught as ValueError."""

from __future__ import annotations

import pytest

from flywheel import formats as F
from flywheel.core.errors import FlywheelError, InputError


@pytest.mark.parametrize("error", [
    F.FormatFileError("f.jsonl", "empty file"),
    F.MixedFormatError("f.jsonl", {"chatml": 1, "alpaca": 2}),
    F.RowFormatError(F.MISSING_MESSAGES, "row has no `messages`"),
    F.ConversionError(F.TOOL_TURNS, "Alpaca cannot carry tool turns"),
    F.ConversionRefused("f.jsonl", "alpaca", {F.MULTI_TURN: 2}, {F.MULTI_TURN: "line 1: 2 exchanges"}),
], ids=lambda e: type(e).__name__)
def test_every_formats_error_is_an_input_error(error: Exception) -> None:
    assert isinstance(error, InputError) and isinstance(error, FlywheelError) and isinstance(error, ValueError)


def test_row_errors_carry_their_reason() -> None:
    for cls in (F.RowFormatError, F.ConversionError):
        err = cls(F.MALFORMED_TURN, "turn 1 is str")
        assert isinstance(err, F.RowReasonError)
        assert (err.reason, err.detail, str(err)) == (F.MALFORMED_TURN, "turn 1 is str", "malformed_turn: turn 1 is str")
    assert not issubclass(F.RowFormatError, F.ConversionError) and not issubclass(F.ConversionError, F.RowFormatError)


def test_unknown_format_and_policy_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown format"):
        F.to_chatml({"messages": []}, "jsonl")
    with pytest.raises(InputError, match="multi_turn"):
        F.from_chatml_rows([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "alpaca",
                           multi_turn="merge")
