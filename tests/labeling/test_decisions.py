"""flywheel.labeling.decisions: decisions by file (all or nothing), and one verdict per item."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flywheel.core.errors import InputError
from flywheel.labeling.decisions import DecisionFileError, export_batch, import_decisions, resolve_decisions
from flywheel.labeling.store import Decision, ReviewStore
from tests.labeling.traffic import WEEK, small_batch


def test_export_import_roundtrip_and_all_or_nothing(store: ReviewStore, tmp_path: Path) -> None:
    items = small_batch(store, 4)
    out = export_batch(store, WEEK, tmp_path / "batch.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["item_id"] for x in lines] == [i["item_id"] for i in items] and lines[0]["rubric"] == "# Rubric"
    lines[0]["verdict"] = "pass"
    lines[1].update(verdict="fix", text="edited")
    lines[2].update(verdict="reject", reason="wrong")
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    bad_cases = {
        "unknown item": dict(lines[3], item_id="nope", verdict="pass"),
        "verdict 'maybe'": dict(lines[3], verdict="maybe"),
        "needs the edited answer": dict(lines[3], verdict="fix", text=""),
    }
    for needle, bad_line in bad_cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(json.dumps(x) for x in [*lines[:3], bad_line]) + "\n")
        with pytest.raises(DecisionFileError, match=f"line 4: .*{needle}"):
            import_decisions(store, bad, "ann")
        assert store.decisions(WEEK) == []  # nothing partially applied
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(lines[0]) + "\n{not json\n")
    with pytest.raises(DecisionFileError, match="line 2: invalid JSON"):
        import_decisions(store, broken, "ann")
    assert store.decisions(WEEK) == []

    report = import_decisions(store, good, "ann")
    assert (report.applied, report.skipped_undecided) == (3, 1)
    assert {d.item_id: d.verdict for d in store.decisions(WEEK)} == {
        items[0]["item_id"]: "pass", items[1]["item_id"]: "fix", items[2]["item_id"]: "reject"}
    store.close_batch(WEEK)
    assert store.progress(WEEK).complete and store.progress(WEEK).state == "closed"
    with pytest.raises(DecisionFileError, match="closed"):
        import_decisions(store, good, "bob")


def test_conflicting_verdicts_resolve_cautiously() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def d(item: str, who: str, verdict: str, minutes: int, text: str | None = None) -> Decision:
        ts = t0 + timedelta(minutes=minutes)
        return Decision(WEEK, item, who, verdict, text, None, ts, ts)

    res = resolve_decisions([d("a", "ann", "pass", 1), d("a", "bob", "fix", 2, "x"),
                             d("b", "ann", "fix", 1, "old"), d("b", "bob", "fix", 5, "new"),
                             d("c", "ann", "reject", 1), d("c", "bob", "fix", 9, "y")])
    assert (res["a"].verdict, res["a"].text, res["a"].conflict) == ("fix", "x", True)
    assert (res["b"].text, res["b"].reviewer, res["b"].conflict) == ("new", "bob", False)
    assert res["c"].verdict == "reject"


def test_a_bad_decisions_file_is_an_input_error(store: ReviewStore, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(InputError, match="cannot read the file") as info:
        import_decisions(store, missing, "ann")
    assert isinstance(info.value, DecisionFileError) and isinstance(info.value, ValueError)
    assert info.value.errors and info.value.path == str(missing)
