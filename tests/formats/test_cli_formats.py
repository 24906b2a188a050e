"""`flywheel validate` and `flywheel convert` through typer's CliRunner: exit codes, JSON keys, files written."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.formats import load_file
from tests.shared_data import DATASETS

TOY = DATASETS / "chatml_openai_toy.jsonl"
SHAREGPT_FILE = DATASETS / "sharegpt_fastchat_dummy.json"
ALPACA_FILE = DATASETS / "alpaca_llamafactory_demo.json"

runner = CliRunner()


def test_validate_json_summary_and_exit_codes() -> None:
    result = runner.invoke(app, ["validate", str(TOY), "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert {"format", "rows", "valid", "invalid", "errors", "warnings"} <= set(summary)
    assert (summary["format"], summary["rows"], summary["valid"], summary["invalid"]) == ("chatml", 5, 3, 2)
    assert summary["errors"] == {"no_user_turn": 1, "degenerate_output": 1, "over_token_budget": 1}

    roomy = json.loads(runner.invoke(app, ["validate", str(TOY), "--json", "--max-tokens", "100000"]).stdout)
    assert "over_token_budget" not in roomy["errors"]

    for path, fmt, rows in ((SHAREGPT_FILE, "sharegpt", 500), (ALPACA_FILE, "alpaca", 999)):
        result = runner.invoke(app, ["validate", str(path), "--json", "--format", fmt])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rows"] == rows


def test_validate_readable_report() -> None:
    result = runner.invoke(app, ["validate", str(TOY)])
    assert result.exit_code == 1
    out = " ".join(result.stdout.split())
    assert "5 rows" in out and "3 valid" in out and "2 invalid" in out
    for reason in ("no_user_turn", "degenerate_output", "over_token_budget"):
        assert reason in out
    assert "line 4" in out and "You're great!" in out  # the first row of a reason, with a snippet


def test_validate_unreadable_and_mixed_files_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
        + json.dumps({"instruction": "q", "input": "", "output": "a"}) + "\n"
    )
    for path, words in ((empty, "empty file"), (mixed, "mixes formats")):
        result = runner.invoke(app, ["validate", str(path), "--json"])
        assert result.exit_code == 2
        assert words in " ".join(result.output.split())
        answer = json.loads(result.stdout)  # --json: an object on stdout even for a refused file
        assert answer["format"] is None and words in answer["error"]
    assert json.loads(runner.invoke(app, ["validate", str(mixed), "--json"]).stdout)["mixed_formats"] == {
        "chatml": 1, "alpaca": 2}
    assert runner.invoke(app, ["validate", str(SHAREGPT_FILE), "--format", "alpaca"]).exit_code == 2
    assert runner.invoke(app, ["validate", str(SHAREGPT_FILE), "--format", "yaml"]).exit_code == 2


def test_convert_skips_invalid_rows_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "toy.sharegpt.jsonl"
    result = runner.invoke(app, ["convert", str(TOY), "--to", "sharegpt", "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "left out 2 invalid rows" in " ".join(result.stdout.split())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all("conversations" in r for r in rows)
    back = load_file(out)
    assert [r.messages for r in back.rows] == [r.messages for r in load_file(TOY).valid_rows]


def test_convert_refuses_lossy_conversions_unless_told_how(tmp_path: Path) -> None:
    out = tmp_path / "alpaca.json"
    refused = runner.invoke(app, ["convert", str(SHAREGPT_FILE), "--to", "alpaca", "-o", str(out)])
    assert refused.exit_code == 2
    assert "--multi-turn" in refused.output and not out.exists()
    done = runner.invoke(app, ["convert", str(SHAREGPT_FILE), "--to", "alpaca", "-o", str(out), "--multi-turn", "history"])
    assert done.exit_code == 0, done.output
    rows = json.loads(out.read_text())
    assert len(rows) == 500 and rows[0]["id"] == "identity_0" and rows[0]["history"]
    assert [r.messages for r in load_file(out).rows] == [r.messages for r in load_file(SHAREGPT_FILE).rows]
    split = tmp_path / "split.jsonl"
    assert runner.invoke(app, ["convert", str(SHAREGPT_FILE), "--to", "alpaca", "-o", str(split),
                               "--multi-turn", "split"]).exit_code == 0
    exchanges = sum(len(r["conversations"]) // 2 for r in json.loads(SHAREGPT_FILE.read_text()))
    assert len(split.read_text().splitlines()) == exchanges
    bad = runner.invoke(app, ["convert", str(SHAREGPT_FILE), "--to", "csv", "-o", str(split)])
    assert bad.exit_code == 2


def test_convert_alpaca_to_chatml_json_array(tmp_path: Path) -> None:
    out = tmp_path / "alpaca.chatml.json"
    result = runner.invoke(app, ["convert", str(ALPACA_FILE), "--to", "chatml", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert len(rows) == 999 and all(list(r) == ["messages"] for r in rows)


def test_validate_with_a_tokenizer_counts_exactly_and_checks_the_chat_template(tmp_path: Path) -> None:
    exact = runner.invoke(app, ["validate", str(TOY), "--tokenizer", "tiny"])
    assert exact.exit_code == 1, exact.output
    out = " ".join(exact.stdout.split())
    assert "line 5: 26091 tokens > 4096" in out  # byte-level: one token per byte plus the template's, not "about"
    assert "chat template of tiny: 3 of 3 valid rows round-trip" in out

    from flywheel.models.base import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    tok.chat_template = (  # answers rendered as `assistant`, the generation prompt says `bot`
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>bot\n{% endif %}"
    )
    tok.save_pretrained(tmp_path / "tok")
    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text(json.dumps({"instruction": "hi", "input": "", "output": "hello"}) + "\n")
    broken = runner.invoke(app, ["validate", str(alpaca), "--tokenizer", str(tmp_path / "tok"), "--json"])
    assert broken.exit_code == 1, broken.output  # every row is valid, the template is not
    summary = json.loads(broken.stdout)
    assert summary["invalid"] == 0 and summary["template"]["failed"] == 1
    assert summary["template"]["problems"] == {"the generation prompt is not a prefix of the full rendering": 1}
    assert summary["template"]["first"] == {"the generation prompt is not a prefix of the full rendering": "line 1"}

    missing = runner.invoke(app, ["validate", str(alpaca), "--tokenizer", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "cannot load" in " ".join(missing.output.split())
