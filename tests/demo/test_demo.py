"""The demo scenario: deterministic, uncontaminated, realistic traffic; the simulated reviewer; the
clean-state guard; the report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from flywheel.capture.records import FEEDBACK_KINDS
from flywheel.core.storage import FlywheelHome
from flywheel.core.text import last_user_text
from flywheel.demo.run import CycleResult, ReviewCounts, reset_home, write_project, write_report
from flywheel.demo.scenario import (
    ANSWERS,
    FULL,
    GENERATOR_A,
    GENERATOR_B,
    INTENTS,
    SMALL,
    build_files,
    review_verdict,
    simulate_traffic,
)
from flywheel.formats import load_file


def test_files_are_deterministic_and_shaped() -> None:
    a, b = build_files(FULL), build_files(FULL)
    assert a.eval_set == b.eval_set and a.seed == b.seed and a.synthetic_a == b.synthetic_a and a.broken == b.broken
    assert 100 <= len(a.eval_set) <= 120
    assert set(Counter(r["slice"] for r in a.eval_set)) == {"clean", "messy", "edge_case"}
    assert 8 <= len(INTENTS) <= 12 and all(len(x) <= 80 for x in ANSWERS.values())
    assert {r["generator"] for r in a.synthetic_a} == {GENERATOR_A} and {r["generator"] for r in a.synthetic_b} == {GENERATOR_B}


def test_no_eval_input_in_any_training_file() -> None:
    files = build_files(FULL)
    eval_inputs = {last_user_text(r["messages"]).lower().strip() for r in files.eval_set}
    for rows in (files.seed, files.synthetic_a, files.synthetic_b, files.broken):
        assert not eval_inputs & {last_user_text(r["messages"]).lower().strip() for r in rows}


def test_broken_generator_pairs_questions_with_wrong_answers() -> None:
    files = build_files(SMALL)
    right = {last_user_text(r["messages"]): r["messages"][-1]["content"] for r in files.seed}
    assert len(files.broken) > 50
    # every broken row's answer belongs to another intent than its question's core phrase
    wrong = 0
    for r in files.broken:
        q = last_user_text(r["messages"]).lower()
        intents = [i for i in INTENTS if any(core.lower() in q for core in _cores(i))]
        wrong += bool(intents) and r["messages"][-1]["content"] != ANSWERS[intents[0]]
    assert wrong >= 0.6 * len(files.broken)
    assert right  # the seed stays correct


def _cores(intent: str) -> list[str]:
    from flywheel.demo.scenario import CORES

    return CORES[intent]


def test_traffic_is_messy_deterministic_and_has_feedback() -> None:
    day = simulate_traffic("2026-10-26", FULL, skill=0.35, model_version="m1")
    assert day == simulate_traffic("2026-10-26", FULL, skill=0.35, model_version="m1")
    assert all(i.ts.date().isoformat() == "2026-10-26" for i in day)
    texts = [i.text for i in day]
    assert sum(t == t.lower() for t in texts) > 0.5 * len(texts)  # mostly lower case, typed in a hurry
    assert sum(len(t) < 45 for t in texts) > 0.6 * len(texts)
    kinds = Counter(fb["kind"] for i in day for fb in i.feedback)
    assert set(kinds) <= set(FEEDBACK_KINDS) and kinds["copy"] and kinds["correction"]
    assert any(i.interaction_id.endswith("-r") for i in day)  # resubmissions in the same session
    wrong = [i for i in day if i.output != ANSWERS[i.intent]]
    assert 0.2 * len(day) < len(wrong) < 0.8 * len(day)


def test_simulated_reviewer_decides_from_ground_truth() -> None:
    assert review_verdict("pw reset", ANSWERS["reset_password"], "reset_password") == ("pass", None)
    assert review_verdict("pw reset", ANSWERS["refund_policy"], "reset_password") == ("fix", ANSWERS["reset_password"])
    assert review_verdict("???", "x", None) == ("reject", None)


def test_project_files_load_with_the_formats_reader(tmp_path: Path) -> None:
    files = build_files(SMALL)
    write_project(tmp_path / "p", files, SMALL)
    for name in ("seed.jsonl", "synthetic_polite.jsonl", "synthetic_terse.jsonl", "eval.jsonl"):
        report = load_file(tmp_path / "p" / name)
        assert report.format == "chatml" and all(r.ok for r in report.rows), name


def test_reset_home_guards_foreign_data(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    (home.root / "warehouse").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="did not write"):
        reset_home(home)
    write_project(home.path("demo-project"), build_files(SMALL), SMALL)
    (home.model("base-tiny")).mkdir(parents=True)
    (home.model("abc")).mkdir(parents=True)
    reset_home(home)
    assert sorted(p.name for p in home.root.iterdir()) == ["models"]
    assert [p.name for p in home.path("models").iterdir()] == ["base-tiny"]


def test_report_and_plot(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    results = [
        CycleResult(1, "bootstrap", dataset_version="d1", by_source={"human": 40}, candidate="m1",
                    scores={"overall": 0.41, "clean": 0.45, "messy": 0.43, "edge_case": 0.3}, promoted=True),
        CycleResult(2, "real traffic", traffic={"interactions": 300, "quarantined": 0, "days": 5},
                    review=ReviewCounts(80, 8, 72, 0), dataset_version="d2", candidate="m2",
                    scores={"overall": 0.6, "clean": 0.7, "messy": 0.66, "edge_case": 0.33}, promoted=True),
        CycleResult(3, "planted regression", dataset_version="d3", candidate="m3", scores={"overall": 0.5},
                    blocked_reason="chrf 0.5 vs champion m2 0.6"),
    ]
    report = write_report(home, results, 100.0, "full")
    text = report.read_text()
    assert "| 2 real traffic |" in text and "blocked: chrf 0.5 vs champion m2 0.6" in text
    assert "simulated-reviewer" in text
    png = home.reports() / "demo_scores.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
