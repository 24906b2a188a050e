"""The demo scenario: deterministic, uncontaminated, realistic traffic; the simulated reviewer; the
clean-state guard; the report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from flywheel.capture.records import FEEDBACK_KINDS
from flywheel.core.storage import FlywheelHome
from flywheel.core.text import last_user_text
from flywheel.demo.cycles import CycleResult, ReviewCounts, cycles_for
from flywheel.demo.project import project_config, reset_home, write_project
from flywheel.demo.report import write_report
from flywheel.demo.scenario import (
    ANSWERS,
    FULL,
    GENERATOR_A,
    GENERATOR_B,
    INTENTS,
    SMALL,
    build_files,
    react,
    review_verdict,
    sample_verdict,
    simulate_requests,
)
from flywheel.demo.traffic import ServedWeek
from flywheel.formats import load_file


def test_files_are_deterministic_and_shaped() -> None:
    a, b = build_files(FULL), build_files(FULL)
    assert a.eval_set == b.eval_set and a.seed == b.seed and a.synthetic_a == b.synthetic_a and a.broken == b.broken
    assert 100 <= len(a.eval_set) <= 200  # the guide's 100-200
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


def test_requests_are_messy_deterministic_and_users_react_to_the_answer() -> None:
    day = simulate_requests("2026-10-26", FULL)
    assert day == simulate_requests("2026-10-26", FULL)
    assert all(r.ts.date().isoformat() == "2026-10-26" for r in day)
    texts = [r.text for r in day]
    assert sum(t == t.lower() for t in texts) > 0.5 * len(texts)  # mostly lower case, typed in a hurry
    assert sum(len(t) < 45 for t in texts) > 0.6 * len(texts)
    right = [react(r, ANSWERS[r.intent]) for r in day]
    assert all(x.right and not x.resubmission for x in right)
    assert {fb["kind"] for x in right for fb in x.feedback} == {"copy"}
    wrong = [react(r, ANSWERS["out_of_scope" if r.intent != "out_of_scope" else "sync_issue"]) for r in day]
    kinds = Counter(fb["kind"] for x in wrong for fb in x.feedback)
    assert set(kinds) <= set(FEEDBACK_KINDS) and kinds["correction"] and kinds["thumbs_down"] and not kinds["copy"]
    assert sum(x.resubmission is not None for x in wrong) > 0.3 * len(day)  # reworded in the same session
    assert all(x.resubmission.session_id == r.session_id for r, x in zip(day, wrong, strict=True) if x.resubmission)


def test_the_drift_week_brings_edge_style_requests() -> None:
    def edgy(requests: list) -> int:
        return sum(("@" in r.text or "android" in r.text or "!!!" in r.text or len(r.text.split()) == 1)
                   for r in requests)

    assert edgy(simulate_requests("2026-11-04", FULL, drift=True)) > 2 * edgy(simulate_requests("2026-11-04", FULL))


def test_admission_reviewer_rejects_answers_of_other_questions() -> None:
    files = build_files(SMALL)
    good = files.synthetic_a[0]["messages"]
    bad = files.broken[0]["messages"]
    assert sample_verdict(good[0]["content"], good[1]["content"], files.truth) == ("pass", None)
    assert sample_verdict(bad[0]["content"], bad[1]["content"], files.truth) == ("reject", None)


def test_the_story_has_a_drift_trigger_a_held_out_file_and_a_recipe_regression() -> None:
    cycles = cycles_for(FULL)
    assert [c.trigger for c in cycles].count("metric_drop") == 1
    assert any(c.add_broken_source for c in cycles) and cycles[-1].recipe and cycles[-1].traffic_week
    assert project_config(FULL, recipe={"epochs": 2.0})["training"]["epochs"] == 2.0
    assert project_config(FULL, training_seed=3)["training"]["seed"] == 3
    assert project_config(FULL)["evaluation"]["seed_replicates"] >= 1


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
                    scores={"overall": 0.41, "clean": 0.45, "messy": 0.43, "edge_case": 0.3},
                    champion_scores={"overall": 0.05}, outcome="promoted", interval=(0.3, 0.42),
                    reasons=["improvement: ..."]),
        CycleResult(2, "week 1 traffic", traffic={"interactions": 300, "quarantined": 0, "days": 5},
                    served=ServedWeek(requests=300, right=120, negatives=90), served_by="m1",
                    review=ReviewCounts(80, 8, 72, 0), dataset_version="d2", candidate="m2",
                    held_out=["synthetic_batch_job.jsonl"], admission={"admission-x": ReviewCounts(30, 5, 0, 25)},
                    scores={"overall": 0.6, "clean": 0.7, "messy": 0.66, "edge_case": 0.33},
                    champion_scores={"overall": 0.41}, outcome="promoted", interval=(0.1, 0.28)),
        CycleResult(3, "recipe change", dataset_version="d2", candidate="m3", scores={"overall": 0.5},
                    champion_scores={"overall": 0.6}, outcome="blocked", interval=(-0.15, -0.05),
                    reasons=["regression: chrf 0.5 vs champion m2 0.6"]),
    ]
    report = write_report(home, results, 100.0, "full", 42)
    text = report.read_text()
    assert "| 2 week 1 traffic | quarterly | 30.0% |" in text
    assert "| blocked: regression |" in text and "  - regression: chrf 0.5 vs champion m2 0.6" in text
    assert "simulated-reviewer" in text and "held out by the admission gate: synthetic_batch_job.jsonl" in text
    assert "+0.190 [+0.100, +0.280]" in text
    png = home.reports() / "demo_scores.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"outcome": "blocked"' in (home.reports() / "demo.json").read_text()
