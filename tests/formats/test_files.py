"""flywheel.formats.files: reading files (real and broken), per-row reasons, converting whole files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel import formats as F
from flywheel.formats import FormatFileError, MixedFormatError, convert_file, load_file
from tests.formats.samples import ALPACA_FILE, SHAREGPT_FILE, TOY, conv, write_jsonl


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


def test_jsonl_of_arrays_is_rows_not_a_truncated_array(tmp_path: Path) -> None:
    good = {"messages": conv(("user", "q"), ("assistant", "a"))}
    path = write_jsonl(tmp_path / "arrays.jsonl", [[1, 2], good, ["x"]])
    report = load_file(path)
    assert [r.errors for r in report.rows] == [[F.NOT_AN_OBJECT], [], [F.NOT_AN_OBJECT]]
    assert [r.line for r in report.rows] == [1, 2, 3]
