"""`flywheel check-config`: every project-level problem at once (rubric placeholders, an empty or too
small eval set, missing source files), exit 1 on an unusable project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.config import load_project
from flywheel.ops.project_checks import check_project
from flywheel.project import RUBRIC_PLACEHOLDERS, init_project
from tests.evaluation.eval_files import eval_rows, write_eval_file


def test_a_fresh_project_lists_every_problem(tmp_path: Path) -> None:
    init_project(tmp_path)
    report = check_project(load_project(tmp_path))
    assert not report.usable
    text = "\n".join(report.problems)
    assert "unedited template" in text
    for placeholder in RUBRIC_PLACEHOLDERS:  # every one, not only the first
        assert repr(placeholder) in text, placeholder
    assert "eval set" in text and "eval.jsonl" in text
    r = CliRunner().invoke(app, ["check-config", str(tmp_path)])
    assert r.exit_code == 1, r.output
    assert f"{len(report.problems)} problem(s)" in r.output and "Traceback" not in r.output


def test_small_eval_set_missing_sources_and_placeholders_together(project_dir: Path) -> None:
    (project_dir / "flywheel.yaml").write_text(
        "evaluation:\n  min_items: 20\n"
        "sources:\n  seed: [seed.jsonl, gone.jsonl]\n  synthetic: [synthetic/batch1.jsonl]\n", encoding="utf-8")
    write_eval_file(project_dir / "eval.jsonl", eval_rows(12))
    write_eval_file(project_dir / "seed.jsonl", eval_rows(3))
    rubric = project_dir / "rubric.md"
    rubric.write_text(rubric.read_text() + "\n- Input: (a real input)\n", encoding="utf-8")
    report = check_project(load_project(project_dir))
    assert report.problems == [
        f"rubric {rubric}: placeholder '(a real input)' is still there",
        f"eval set {project_dir / 'eval.jsonl'}: 12 usable item(s), fewer than evaluation.min_items 20",
        f"sources.seed: {project_dir / 'gone.jsonl'} does not exist",
        f"sources.synthetic: {project_dir / 'synthetic/batch1.jsonl'} does not exist",
    ]
    r = CliRunner().invoke(app, ["check-config", str(project_dir)])
    assert r.exit_code == 1
    for problem in ("'(a real input)'", "fewer than evaluation.min_items 20", "gone.jsonl", "batch1.jsonl"):
        assert problem in " ".join(r.output.split()), problem


def test_unusable_eval_rows_are_a_problem(project_dir: Path) -> None:
    rows = eval_rows(120)
    rows[7] = {"messages": [{"role": "user", "content": "no answer"}], "slice": "clean"}
    write_eval_file(project_dir / "eval.jsonl", rows)
    (problem,) = check_project(load_project(project_dir)).problems
    assert problem.endswith("eval.jsonl: 1 unusable row(s) (first: line 8, no_assistant_turn)")


def test_a_usable_project_passes_with_warnings(project_dir: Path) -> None:
    write_eval_file(project_dir / "eval.jsonl", eval_rows(205))  # above max_items 200: a warning only
    report = check_project(load_project(project_dir))
    assert report.usable and len(report.warnings) == 1 and "more than evaluation.max_items 200" in report.warnings[0]
    r = CliRunner().invoke(app, ["check-config", str(project_dir)])
    assert r.exit_code == 0, r.output
    assert "project ok" in r.output and "warning:" in r.output
    assert json.loads(r.output[: r.output.index("\nwarning:")])["name"]  # the effective config comes first


def test_a_missing_pseudonym_key_is_a_problem_unless_ids_are_kept_raw(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_eval_file(project_dir / "eval.jsonl", eval_rows(120))
    monkeypatch.delenv("FLYWHEEL_PSEUDONYM_KEY")
    (problem,) = check_project(load_project(project_dir)).problems
    assert "$FLYWHEEL_PSEUDONYM_KEY is not set" in problem
    (project_dir / "flywheel.yaml").write_text("capture:\n  pseudonymize: false\n", encoding="utf-8")
    assert check_project(load_project(project_dir)).usable
