"""flywheel.formats: reading, detection, per-row validation, conversion and the chat-template round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flywheel import formats as F
from flywheel.formats import (
    ConversionError,
    ConversionRefused,
    FormatFileError,
    MixedFormatError,
    check_template_round_trip,
    convert_file,
    detect_format,
    from_chatml,
    from_chatml_rows,
    load_file,
    render_with_template,
    to_chatml,
    validate_messages,
)
from tests.shared_data import DATASETS

TOY = DATASETS / "chatml_openai_toy.jsonl"
SHAREGPT_FILE = DATASETS / "sharegpt_fastchat_dummy.json"
ALPACA_FILE = DATASETS / "alpaca_llamafactory_demo.json"


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def conv(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


# --- the real files ----------------------------------------------------------------------------
def test_openai_toy_file_reasons() -> None:
    report = load_file(TOY)
    assert report.format == "chatml"
    by_line = {r.line: r for r in report.rows}
    assert sorted(by_line) == [1, 2, 3, 4, 5]
    assert by_line[1].ok and by_line[2].ok
    assert by_line[3].ok and by_line[3].messages[0]["role"] == "user"  # no system message is fine
    assert by_line[4].errors == [F.NO_USER_TURN] and by_line[4].messages is None
    assert set(by_line[5].errors) == {F.DEGENERATE_OUTPUT, F.OVER_TOKEN_BUDGET}
    assert "Eat a banana!" in by_line[5].details[F.DEGENERATE_OUTPUT]
    summary = report.summary()
    assert (summary["rows"], summary["valid"], summary["invalid"]) == (5, 3, 2)
    assert summary["errors"] == {F.NO_USER_TURN: 1, F.DEGENERATE_OUTPUT: 1, F.OVER_TOKEN_BUDGET: 1}
    assert summary["warnings"] == {}


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


def test_sharegpt_fastchat_file() -> None:
    report = load_file(SHAREGPT_FILE)
    assert report.format == "sharegpt"
    assert report.summary()["rows"] == 500 and report.summary()["valid"] == 500
    for r in report.rows:
        assert {m["role"] for m in r.messages} <= {"user", "assistant"}
        assert r.messages[-1]["role"] == "assistant"
        assert r.extras == {"id": r.raw["id"]}
        assert r.line is None


def test_alpaca_llamafactory_file() -> None:
    report = load_file(ALPACA_FILE)
    assert report.format == "alpaca"
    assert report.summary()["valid"] == 999
    empty_input = [r for r in report.rows if r.raw["input"] == ""]
    assert len(empty_input) == 587
    for r in report.rows:
        user, answer = r.messages
        expected = r.raw["instruction"] + ("\n\n" + r.raw["input"] if r.raw["input"] else "")
        assert user == {"role": "user", "content": expected}
        assert answer == {"role": "assistant", "content": r.raw["output"]}


# --- round trips ---------------------------------------------------------------------------------
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


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
@pytest.mark.parametrize("target", F.FORMATS)
def test_convert_file_writes_the_format_and_converts_back(tmp_path: Path, target: str, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    result = convert_file(SHAREGPT_FILE, out, target, multi_turn="history")
    assert result.written == 500 and result.rows_out == 500
    text = out.read_text(encoding="utf-8")
    assert text.lstrip().startswith("[") == (suffix == ".json")
    again = load_file(out)
    assert again.format == target
    original = load_file(SHAREGPT_FILE)
    assert [r.messages for r in again.rows] == [r.messages for r in original.rows]
    assert [r.extras for r in again.rows] == [r.extras for r in original.rows]
    assert not list(tmp_path.glob(".*.tmp"))


# --- generated edge cases --------------------------------------------------------------------------
def test_mixed_file_is_refused_naming_the_first_row_of_each_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"messages": conv(("user", "hi"), ("assistant", "hello"))},
        {"messages": conv(("user", "a"), ("assistant", "b"))},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"instruction": "say hi", "input": "", "output": "hi"},
    ])
    with pytest.raises(MixedFormatError) as info:
        load_file(path)
    assert isinstance(info.value, FormatFileError)
    assert info.value.first_rows == {"chatml": 1, "sharegpt": 3, "alpaca": 4}
    msg = str(info.value)
    assert str(path) in msg and "sharegpt first at line 3" in msg and "alpaca first at line 4" in msg
    with pytest.raises(MixedFormatError):
        load_file(path, fmt="chatml")
    rows = [{"messages": []}, {"instruction": "x", "output": "y"}]
    with pytest.raises(MixedFormatError, match="alpaca first at row 2"):
        detect_format(rows)


def test_bad_lines_and_non_objects_are_rows_with_reasons(tmp_path: Path) -> None:
    good = {"messages": conv(("user", "hi"), ("assistant", "hello")), "id": 7}
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        "{not json",
        "",
        "[1, 2]",
        '"a string"',
        "42",
        json.dumps({"other": 1}),
        json.dumps({"messages": "hi"}),
        json.dumps({"messages": []}),
        json.dumps({"messages": ["hi"]}),
    ]) + "\n", encoding="utf-8")
    report = load_file(path)
    reasons = {r.line: r.errors for r in report.rows}
    assert reasons == {
        1: [], 2: [F.INVALID_JSON], 4: [F.NOT_AN_OBJECT], 5: [F.NOT_AN_OBJECT], 6: [F.NOT_AN_OBJECT],
        7: [F.MISSING_MESSAGES], 8: [F.MISSING_MESSAGES], 9: [F.EMPTY_MESSAGES], 10: [F.MALFORMED_TURN],
    }
    assert report.rows[1].raw == "{not json"
    s = report.summary()
    assert s["rows"] == s["valid"] + s["invalid"] == 9  # counts conserved, blank line is no row
    assert report.rows[0].extras == {"id": 7}


def test_unreadable_files(tmp_path: Path) -> None:
    cases = {
        "empty.jsonl": b"",
        "blank.jsonl": b"  \n\n",
        "empty_array.json": b"[]",
        "truncated.json": b'[{"instruction": "a", "input": "", "output": "b"},\n {"instruction": "c", "inp',
        "latin1.jsonl": b'{"messages": []}\n{"messages": [{"role": "user", "content": "caf\xe9"}]}\n',
        "object.json": json.dumps({"messages": conv(("user", "a"), ("assistant", "b"))}, indent=2).encode(),
        "prose.txt": b"hello\nworld\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(FormatFileError) as info:
            load_file(path)
        assert not isinstance(info.value, MixedFormatError)
        assert str(path) in str(info.value), name
    with pytest.raises(FormatFileError, match=r"latin1\.jsonl:2: not valid UTF-8"):
        load_file(tmp_path / "latin1.jsonl")
    with pytest.raises(FormatFileError, match="truncated"):
        load_file(tmp_path / "truncated.json")
    with pytest.raises(FormatFileError, match="cannot read"):
        load_file(tmp_path / "missing.jsonl")


def test_forced_format_must_match(tmp_path: Path) -> None:
    with pytest.raises(FormatFileError, match="rows are sharegpt, not alpaca"):
        load_file(SHAREGPT_FILE, fmt="alpaca")
    assert load_file(SHAREGPT_FILE, fmt="sharegpt").format == "sharegpt"
    path = write_jsonl(tmp_path / "odd.jsonl", [{"other": 1}, [1]])
    with pytest.raises(FormatFileError, match="no row is in a known format"):
        load_file(path)
    forced = load_file(path, fmt="chatml")
    assert [r.errors for r in forced.rows] == [[F.MISSING_MESSAGES], [F.NOT_AN_OBJECT]]


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


# --- validate_messages: each reason --------------------------------------------------------------
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


# --- chat template -------------------------------------------------------------------------------
def tiny_tokenizer() -> Any:
    from flywheel.models.base import build_tiny_tokenizer

    return build_tiny_tokenizer()


def test_template_round_trip_with_the_tiny_tokenizer() -> None:
    tok = tiny_tokenizer()
    for r in load_file(TOY).valid_rows + load_file(SHAREGPT_FILE).rows[:20]:
        check = check_template_round_trip(tok, r.messages)
        assert check.ok, check.problems
        assert check.rendered.startswith(check.prompt) and check.prompt.endswith("assistant\n")
    msgs = conv(("user", "héllo 日本 😀  two  spaces"), ("assistant", "\tok\n"))
    check = check_template_round_trip(tok, msgs)
    assert check.ok, check.problems
    assert render_with_template(tok, msgs) == check.rendered


def test_template_round_trip_finds_broken_templates() -> None:
    tok = tiny_tokenizer()
    msgs = conv(("system", "Be kind."), ("user", "hi"), ("assistant", "hello"))
    tok.chat_template = (  # drops the system prompt
        "{% for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    check = check_template_round_trip(tok, msgs)
    assert not check.ok and "turn 1 (system)" in check.problems[0]
    tok.chat_template = (  # the generation prompt differs from how answers are rendered
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>bot\n{% endif %}"
    )
    check = check_template_round_trip(tok, msgs)
    assert check.problems == ["the generation prompt is not a prefix of the full rendering"]


def test_template_round_trip_finds_lossy_tokenizers() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    word = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    word.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=word, unk_token="[UNK]")
    tok.chat_template = tiny_tokenizer().chat_template
    check = check_template_round_trip(tok, conv(("user", "hi"), ("assistant", "hi")))
    assert check.problems == ["tokenize then decode does not give the rendered text back"]


def test_top_level_system_must_be_text() -> None:
    for fmt, row in (("sharegpt", {"system": 3, "conversations": [{"from": "human", "value": "q"}]}),
                     ("alpaca", {"system": ["x"], "instruction": "q", "output": "a"})):
        result = F.validate_row(row, fmt)
        assert result.errors == [F.MISSING_CONTENT] and "`system`" in result.details[F.MISSING_CONTENT]
    # an empty system prompt adds no turn
    assert to_chatml({"system": "", "instruction": "q", "input": "", "output": "a"}, "alpaca") == conv(
        ("user", "q"), ("assistant", "a"))


def test_jsonl_of_arrays_is_rows_not_a_truncated_array(tmp_path: Path) -> None:
    good = {"messages": conv(("user", "q"), ("assistant", "a"))}
    path = write_jsonl(tmp_path / "arrays.jsonl", [[1, 2], good, ["x"]])
    report = load_file(path)
    assert [r.errors for r in report.rows] == [[F.NOT_AN_OBJECT], [], [F.NOT_AN_OBJECT]]
    assert [r.line for r in report.rows] == [1, 2, 3]
