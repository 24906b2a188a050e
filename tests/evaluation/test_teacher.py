"""The teacher's scorecard: its answers to the fixed eval set over real HTTP, beside the champion's."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from flywheel.config import load_project
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.evaluation.cycle import build_fixed_eval_set
from flywheel.evaluation.eval_set import eval_items, eval_set_table
from flywheel.evaluation.teacher import BETTER, WORSE, teacher_path, teacher_scorecard
from tests.evaluation.eval_files import eval_rows, write_eval_file
from tests.generation.openai_server import serve_openai


def _project(project_dir: Path, home: FlywheelHome, url: str, teacher: str):  # noqa: ANN202
    write_eval_file(project_dir / "eval.jsonl", eval_rows(100))
    data = yaml.safe_load((project_dir / "flywheel.yaml").read_text(encoding="utf-8"))
    data["generation"] = {"teacher": {"base_url": url, "model": teacher, "max_retries": 0}}
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    project = load_project(project_dir)
    info = build_fixed_eval_set(project, home, home.database_url())
    return project, info


def _champion_cached(home: FlywheelHome, info: dict, answer_of) -> None:  # noqa: ANN001
    """The champion's (the base model's) eval answers as an earlier evaluation cycle cached them."""
    items = eval_items(eval_set_table(home))
    cache = home.reports() / "champion_answers" / f"base_tiny__{info['content_hash']}__t128.parquet"
    write_parquet(pa.table({"example_id": [it.example_id for it in items],
                            "answer": [answer_of(it) for it in items]}), cache)


def test_better_teacher_and_worse_teacher(project_dir: Path, home: FlywheelHome) -> None:
    references = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in eval_rows(100)}
    with serve_openai(answers=references) as (url, seen):
        project, info = _project(project_dir, home, url, "teacher-good")
        _champion_cached(home, info, lambda it: "no idea")
        card = teacher_scorecard(project, home, home.database_url())
        assert card["verdict"] == BETTER and card["champion"] == "base:tiny" and card["champion_answers_cached"]
        assert card["overall"]["chrf"]["candidate"] == 1.0 and card["n_items"] == 100 and not card["failed_items"]
        assert len([s for s in seen if s["model"] == "teacher-good"]) == 100

        project, info = _project(project_dir, home, url, "echo-model")
        _champion_cached(home, info, lambda it: it.reference)
        card = teacher_scorecard(project, home, home.database_url())
        assert card["verdict"] == WORSE and card["overall"]["chrf"]["diff"] < 0
    assert json.loads(teacher_path(home, "echo-model").read_text())["verdict"] == WORSE


def test_no_teacher_or_unreachable_teacher(project_dir: Path, home: FlywheelHome) -> None:
    project, info = _project(project_dir, home, "http://127.0.0.1:9/v1", "teacher-gone")
    _champion_cached(home, info, lambda it: "no")
    with pytest.raises(Exception, match="answered none of 100 eval items"):
        teacher_scorecard(project, home, home.database_url())
    project.generation.teacher = None
    with pytest.raises(InputError, match="no teacher configured"):
        teacher_scorecard(project, home, home.database_url())
