"""flywheel.formats.chatml: every format to ChatML and back, aliases, refused lossy conversions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel import formats as F
from flywheel.formats import (
    ConversionError,
    ConversionRefused,
    convert_file,
    from_chatml,
    from_chatml_rows,
    load_file,
    to_chatml,
    validate_messages,
)
from tests.formats.samples import ALPACA_FILE, SHAREGPT_FILE, TOY, conv


@pytest.mark.parametrize("path", [TOY, SHAREGPT_FILE, ALPACA_FILE], ids=lambda p: p.name)
@pytest.mark.parametrize("target", F.FORMATS)
def test_every_row_round_trips_through_every_format(path: Path, target: str) -> None:
    report = load_file(path)
    for r in report.valid_rows:
        out = from_chatml(r.messages, target, r.extras, multi_turn="history")
        back = F.validate_row(out, target)
        assert back.ok, back.details
        assert back.messages == r.messages
        assert back.extras == r.extras


def test_native_rows_come_back_identical() -> None:
    for r in load_file(SHAREGPT_FILE).rows:
        assert from_chatml(r.messages, "sharegpt", r.extras) == r.raw
    for r in load_file(TOY).valid_rows:
        assert from_chatml(r.messages, "chatml", r.extras) == r.raw
    for r in load_file(ALPACA_FILE).rows:
        out = from_chatml(r.messages, "alpaca", r.extras)
        if r.raw["input"] == "":
            assert out == r.raw
        else:  # the conversation is kept; the instruction/input split is not
            assert out["instruction"] == r.raw["instruction"] + "\n\n" + r.raw["input"]
            assert out["input"] == ""


def test_sharegpt_aliases_system_and_tools() -> None:
    row = {
        "id": "x", "tools": "[]", "system": "Be brief.",
        "conversations": [
            {"from": "user", "value": "weather?"},
            {"from": "function_call", "value": '{"name": "weather"}'},
            {"from": "observation", "value": "sunny"},
            {"from": "bot", "value": "It is sunny."},
            {"from": "Human", "value": "thanks"},
            {"from": "ChatGPT", "value": "You're welcome.", "weight": 0},
            {"from": "human", "value": "bye"},
            {"from": "model", "value": "bye"},
            {"from": "function", "value": "x"},
            {"from": "tool", "value": "y"},
            {"from": "assistant", "value": "done"},
        ],
    }
    msgs = to_chatml(row, "sharegpt")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant",
                                         "user", "assistant", "tool", "tool", "assistant"]
    assert msgs[0]["content"] == "Be brief." and msgs[6] == {"role": "assistant", "content": "You're welcome.", "weight": 0}
    assert validate_messages(msgs).ok
    assert F.extra_keys(row, "sharegpt") == {"id": "x", "tools": "[]"}
    back = from_chatml(msgs, "sharegpt", F.extra_keys(row, "sharegpt"))
    assert back["conversations"][0] == {"from": "system", "value": "Be brief."}
    assert [t["from"] for t in back["conversations"][1:4]] == ["human", "gpt", "observation"]
    assert to_chatml(back, "sharegpt") == msgs
    # role/content turns inside `conversations` are read too
    assert to_chatml({"conversations": conv(("user", "a"), ("assistant", "b"))}, "sharegpt") == conv(
        ("user", "a"), ("assistant", "b"))
    unknown = to_chatml({"conversations": [{"from": "narrator", "value": "x"}]}, "sharegpt")
    assert validate_messages(unknown).errors == [F.UNKNOWN_ROLE]


def test_chatml_role_aliases_and_message_keys() -> None:
    row = {"messages": [{"role": "developer", "content": "rules"}, {"role": "User", "content": "q"},
                        {"role": "assistant", "content": "a", "weight": 1}]}
    msgs = to_chatml(row, "chatml")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"] and msgs[2]["weight"] == 1
    assert row["messages"][0]["role"] == "developer"  # the input row is not modified


def test_alpaca_with_system_and_history() -> None:
    row = {"instruction": "And 3+3?", "input": "", "output": "6", "system": "You add.",
           "history": [["1+1?", "2"], ["2+2?", "4"]], "slice": "math"}
    msgs = to_chatml(row, "alpaca")
    assert msgs == conv(("system", "You add."), ("user", "1+1?"), ("assistant", "2"), ("user", "2+2?"),
                        ("assistant", "4"), ("user", "And 3+3?"), ("assistant", "6"))
    assert validate_messages(msgs).ok
    extras = F.extra_keys(row, "alpaca")
    assert extras == {"slice": "math"}
    assert from_chatml(msgs, "alpaca", extras, multi_turn="history") == row
    with pytest.raises(ConversionError) as info:
        from_chatml(msgs, "alpaca", extras)
    assert info.value.reason == F.MULTI_TURN
    assert from_chatml(msgs, "alpaca", extras, multi_turn="last") == {
        "slice": "math", "instruction": "And 3+3?", "input": "", "output": "6", "system": "You add."}
    split = from_chatml_rows(msgs, "alpaca", extras, multi_turn="split")
    assert [(r["instruction"], r["output"], r["system"], r["slice"]) for r in split] == [
        ("1+1?", "2", "You add.", "math"), ("2+2?", "4", "You add.", "math"), ("And 3+3?", "6", "You add.", "math")]
    for bad in ({"instruction": "a", "output": "b", "history": "x"}, {"instruction": "a", "output": "b", "history": [["x"]]}):
        with pytest.raises(F.RowFormatError) as err:
            to_chatml(bad, "alpaca")
        assert err.value.reason == F.MALFORMED_TURN
    assert validate_messages(to_chatml({"instruction": "a", "input": ""}, "alpaca")).errors == [F.NO_ASSISTANT_TURN]
    assert validate_messages(to_chatml({"instruction": "a", "output": None}, "alpaca")).errors == [F.MISSING_CONTENT]


def test_conversions_that_would_lose_information_are_refused(tmp_path: Path) -> None:
    tools = conv(("user", "q"), ("assistant", "call"), ("tool", "r"), ("assistant", "a"))
    with pytest.raises(ConversionError) as info:
        from_chatml(tools, "alpaca", multi_turn="split")
    assert info.value.reason == F.TOOL_TURNS
    weighted = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]
    with pytest.raises(ConversionError) as info:
        from_chatml(weighted, "alpaca")
    assert info.value.reason == F.TURN_KEYS
    assert from_chatml(weighted, "sharegpt")["conversations"][1] == {"from": "gpt", "value": "a", "weight": 0}
    with pytest.raises(ConversionError) as info:
        from_chatml(conv(("user", "q"), ("assistant", "a")), "alpaca", {"output": "clash"})
    assert info.value.reason == F.EXTRA_KEY_CONFLICT
    with pytest.raises(ValueError, match="multi_turn"):
        from_chatml(conv(("user", "q"), ("assistant", "a")), "alpaca", multi_turn="merge")
    # a whole-file conversion is refused and nothing is written
    out = tmp_path / "out.json"
    with pytest.raises(ConversionRefused) as refused:
        convert_file(SHAREGPT_FILE, out, "alpaca")
    assert refused.value.reasons[F.MULTI_TURN] > 0 and "--multi-turn" in str(refused.value)
    assert not out.exists()
    result = convert_file(TOY, out, "alpaca", multi_turn="split")
    assert result.written == 3 and len(result.skipped) == 2
    assert result.rows_out == 1 + 4 + 1
    assert len(json.loads(out.read_text())) == 6


def test_top_level_system_must_be_text() -> None:
    for fmt, row in (("sharegpt", {"system": 3, "conversations": [{"from": "human", "value": "q"}]}),
                     ("alpaca", {"system": ["x"], "instruction": "q", "output": "a"})):
        result = F.validate_row(row, fmt)
        assert result.errors == [F.MISSING_CONTENT] and "`system`" in result.details[F.MISSING_CONTENT]
    # an empty system prompt adds no turn
    assert to_chatml({"system": "", "instruction": "q", "input": "", "output": "a"}, "alpaca") == conv(
        ("user", "q"), ("assistant", "a"))
