"""Distillation: a teacher over real HTTP answers the week's captured inputs; a self-teacher is refused."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from flywheel.core.storage import FlywheelHome
from flywheel.generation.distillation import SelfTeacherRefused, distill_week, week_interactions
from tests.generation.conftest import MESSY, WEEK, endpoint, write_interactions, write_project

NO_WAIT = {"sleep": lambda s: None}


def test_teacher_answers_this_weeks_inputs(openai_server: tuple[str, list[dict[str, Any]]], project_dir: Path,
                                           home: FlywheelHome, monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = openai_server
    write_interactions(home, "2026-01-06", MESSY[:6])
    write_interactions(home, "2026-01-07", MESSY[4:8])  # two repeats of Tuesday's inputs
    write_interactions(home, "2026-01-12", ["next week's input"])  # outside the week
    project = write_project(project_dir, {"teacher": endpoint(url, "teacher-big", "llama", api_key_env="TEACH_KEY")})
    monkeypatch.setenv("TEACH_KEY", "t0k")
    run = distill_week(project, home, WEEK, **NO_WAIT)
    assert run.facts["inputs_this_week"] == 8 and run.target == 8 and len(run.rows) == 8
    rows = [json.loads(line) for line in home.generated("distilled", WEEK).read_text().splitlines()]
    assert {r["messages"][0]["content"] for r in rows} == set(MESSY[:8])
    assert all(r["teacher"] == "teacher-big" and r["messages"][-1]["content"] == "TEACHER ANSWER: " + r["messages"][0]["content"]
               and r["served_by"] == "champ-v1" and r["interaction_id"] for r in rows)
    assert all(s["auth"] == "Bearer t0k" for s in seen)
    assert run.tallies["teacher-big"].tokens > 0


def test_self_teacher_refused_unless_allowed(openai_server: tuple[str, list[dict[str, Any]]], project_dir: Path,
                                             home: FlywheelHome) -> None:
    url, _ = openai_server
    write_interactions(home, "2026-01-06", MESSY[:3], model_version="teacher-me")
    project = write_project(project_dir, {"teacher": endpoint(url, "teacher-me", "llama")})
    with pytest.raises(SelfTeacherRefused, match="deployed model itself"):
        distill_week(project, home, WEEK, **NO_WAIT)
    project = write_project(project_dir, {"teacher": endpoint(url, "teacher-big", "llama")},
                            curation={"self_generator_names": ["teacher-big"]})
    with pytest.raises(SelfTeacherRefused):
        distill_week(project, home, WEEK, **NO_WAIT)
    project = write_project(project_dir, {"teacher": endpoint(url, "teacher-me", "llama"), "allow_self_teacher": True})
    assert len(distill_week(project, home, WEEK, **NO_WAIT).rows) == 3


def test_failing_teacher_keeps_nothing_and_says_why(openai_server: tuple[str, list[dict[str, Any]]],
                                                    project_dir: Path, home: FlywheelHome) -> None:
    url, _ = openai_server
    write_interactions(home, "2026-01-06", MESSY)
    project = write_project(project_dir, {"teacher": endpoint(url, "gen-broken", "llama"), "max_failed_requests": 2})
    run = distill_week(project, home, WEEK, **NO_WAIT)
    t = run.tallies["gen-broken"]
    assert not run.rows and t.failures == {"http_500": 2} and "2 failed requests in a row" in t.stopped
    assert run.facts["not_answered"] == 8
    q = pq.read_table(home.quarantine("generated_distilled", WEEK)).to_pylist()
    assert len(q) == 2 and all(x["reason"] == "http_500" and "interaction 2026-01-06-" in x["detail"] for x in q)


def test_ratio_bounds_the_inputs(openai_server: tuple[str, list[dict[str, Any]]], project_dir: Path,
                                 home: FlywheelHome) -> None:
    url, _ = openai_server
    write_interactions(home, "2026-01-06", MESSY)
    project = write_project(project_dir, {"teacher": endpoint(url, "teacher-big", "llama")},
                            curation={"max_synthetic_per_real": 1.0})
    run = distill_week(project, home, WEEK, **NO_WAIT)
    assert run.target == 6 == len(run.rows)  # 6 seed rows x 1
    assert len(week_interactions(home, dt.date(2026, 1, 5))) == 10
