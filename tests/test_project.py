"""`flywheel init` and the rubric that must be written before a dataset is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.config import load_project
from flywheel.formats import FormatFileError, load_file
from flywheel.project import (
    RUBRIC_PLACEHOLDERS,
    RUBRIC_TEMPLATE_MARKER,
    STARTER_FILES,
    init_project,
    rubric_problem,
    template_text,
)


def test_init_writes_the_three_starter_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "proj")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "proj"
    assert sorted(p.name for p in folder.iterdir()) == sorted(STARTER_FILES)
    yaml_text = (folder / "flywheel.yaml").read_text()
    assert yaml_text.count("#") > 10  # commented
    assert load_project(folder).rubric == "rubric.md"
    assert (folder / "eval.jsonl").read_text() == ""  # an empty eval set
    with pytest.raises(FormatFileError, match="empty file"):
        load_file(folder / "eval.jsonl")
    assert "write the rubric" in result.output


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "rubric.md").write_text("my rubric", encoding="utf-8")
    again = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    assert (tmp_path / "rubric.md").read_text() == "my rubric"
    init_project(tmp_path, force=True)
    assert (tmp_path / "rubric.md").read_text() == template_text("rubric.md")


def test_the_template_rubric_is_refused(tmp_path: Path) -> None:
    init_project(tmp_path)
    problem = rubric_problem(load_project(tmp_path))
    assert problem is not None and "unedited template" in problem and str(tmp_path / "rubric.md") in problem


def test_deleting_only_the_marker_line_is_not_writing_the_rubric(tmp_path: Path) -> None:
    init_project(tmp_path)
    path = tmp_path / "rubric.md"
    lines = [line for line in path.read_text().splitlines(keepends=True) if RUBRIC_TEMPLATE_MARKER not in line]
    path.write_text("".join(lines), encoding="utf-8")
    problem = rubric_problem(load_project(tmp_path))
    assert problem is not None and "placeholder '(paste a real production input)'" in problem


def test_every_placeholder_is_in_the_template() -> None:
    template = template_text("rubric.md")
    assert RUBRIC_TEMPLATE_MARKER in template.splitlines()[0]
    assert all(p in template for p in RUBRIC_PLACEHOLDERS)


def test_an_edited_rubric_passes(tmp_path: Path) -> None:
    init_project(tmp_path)
    path = tmp_path / "rubric.md"
    text = path.read_text().split("\n", 1)[1]  # marker line deleted
    text = text.replace("(paste a real production input)", "how do i reset my pasword")
    text = text.replace("(the answer you want every time: tone, length, structure)", "Settings > Account > Reset.")
    text = text.replace("(a real input)", "refund??")
    text = text.replace("(a tempting but wrong answer, and why it is wrong)", "Sure, refunded! (invents a policy)")
    path.write_text(text, encoding="utf-8")
    assert rubric_problem(load_project(tmp_path)) is None


def test_missing_and_empty_rubrics(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "rubric.md").write_text("  \n", encoding="utf-8")
    assert "rubric is empty" in (rubric_problem(load_project(tmp_path)) or "")
    (tmp_path / "rubric.md").unlink()
    assert "rubric not found" in (rubric_problem(load_project(tmp_path)) or "")


def test_the_rubric_path_comes_from_the_project_file(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "flywheel.yaml").write_text("rubric: docs/quality.md\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "quality.md").write_text("# Rubric\nGood: short and exact.\nBad: invented facts.\n")
    assert rubric_problem(load_project(tmp_path)) is None
