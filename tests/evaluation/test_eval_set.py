"""The fixed eval set: reading any format with slices, refusing bad rows with reasons, its content hash."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.config import PiiConfig
from flywheel.evaluation.eval_set import eval_items, load_eval_set
from flywheel.models.artifact import eval_set_hash
from tests.evaluation.eval_files import SLICE_ANSWERS, eval_rows, write_eval_file


def test_load_eval_set_keeps_slices_and_reports_bad_rows(tmp_path: Path) -> None:
    rows = eval_rows(10)
    rows.append({"messages": [{"role": "user", "content": "no answer"}], "slice": "clean"})
    rows.append(rows[0])
    path = write_eval_file(tmp_path / "eval.jsonl", rows)
    loaded = load_eval_set(path)
    assert loaded.table.num_rows == 10 and loaded.read == 12
    assert set(loaded.table.column("slice").to_pylist()) == set(SLICE_ANSWERS)
    assert set(loaded.table.column("source").to_pylist()) == {"human"}
    bad = {r["line"]: r for r in loaded.invalid}
    assert set(bad) == {11, 12}
    assert bad[12]["reason"] == "duplicate" and str(path) == bad[11]["source_file"]


def test_load_eval_set_reads_alpaca_with_slices(tmp_path: Path) -> None:
    rows = [{"instruction": f"say {i}", "input": "", "output": str(i), "slice": "clean"} for i in range(5)]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    loaded = load_eval_set(path)
    assert loaded.format == "alpaca" and loaded.table.num_rows == 5 and not loaded.invalid
    assert eval_items(loaded.table)[2].reference == "2"


def test_eval_set_hash_ignores_order_but_not_content_or_slices(tmp_path: Path) -> None:
    rows = eval_rows(20)
    h = eval_set_hash(load_eval_set(write_eval_file(tmp_path / "a.jsonl", rows)).table)
    assert eval_set_hash(load_eval_set(write_eval_file(tmp_path / "b.jsonl", rows[::-1])).table) == h
    changed = [dict(r) for r in rows]
    changed[3] = {**changed[3], "slice": "messy"}
    assert eval_set_hash(load_eval_set(write_eval_file(tmp_path / "c.jsonl", changed)).table) != h
    edited = json.loads(json.dumps(rows))
    edited[0]["messages"][1]["content"] = "maybe"
    assert eval_set_hash(load_eval_set(write_eval_file(tmp_path / "d.jsonl", edited)).table) != h


def test_a_frozen_eval_set_is_scrubbed_of_pii_and_says_whether_ner_ran(tmp_path: Path) -> None:
    rows = eval_rows(4)
    rows[0] = {**rows[0], "messages": [{"role": "user", "content": "I'm jane.doe@example.com, IBAN GB82WEST12345698765432"},
                                       {"role": "assistant", "content": "Write to billing@nimbus.example"}]}  # fmt: skip
    rows.append({"messages": [{"role": "user", "content": "call me on +33 6 12 34 56 78"}], "slice": "clean"})
    path = write_eval_file(tmp_path / "eval.jsonl", rows)
    loaded = load_eval_set(path, pii=PiiConfig(allow=["nimbus.example"], ner_models=["no_such_pipeline"]))
    first = loaded.table.to_pylist()[0]["messages"]
    assert [m["content"] for m in first] == ["I'm [EMAIL], IBAN [IBAN]", "Write to billing@nimbus.example"]
    assert loaded.invalid[0]["reason"] == "no_assistant_turn" and "[PHONE]" in loaded.invalid[0]["raw"]
    assert "6 12 34 56 78" not in loaded.invalid[0]["raw"]
    assert loaded.pii_scan is not None and loaded.pii_scan["ner"] is False
    assert loaded.pii_scan["hits"] == {"email": 1, "iban": 1}
    assert load_eval_set(path).pii_scan is None  # without capture.pii: read as written
