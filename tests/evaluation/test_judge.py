"""The LLM judge: its reply parser, and grading over a real local OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest
import yaml

from flywheel.evaluation.eval_set import EvalItem
from flywheel.evaluation.judge import JudgeError, LLMJudge, make_judge, parse_judge_score
from flywheel.evaluation.metrics import score_answers


def test_parse_judge_score() -> None:
    assert parse_judge_score('{"score": 5, "reason": "great"}') == 1.0
    assert parse_judge_score('Sure. {"score": 1, "reason": "wrong"}') == 0.0
    assert parse_judge_score("I'd give it 3 out of 5") == 0.5
    assert parse_judge_score('{"score": 9}') == 1.0  # clipped to the scale
    assert math.isnan(parse_judge_score("no grade at all"))


def test_judge_scores_through_openai_compatible_endpoint(judge_server: tuple[str, list[dict]]) -> None:
    url, seen = judge_server
    items = [EvalItem(str(i), "clean", [{"role": "user", "content": f"q{i}"}], "yes") for i in range(3)]
    with LLMJudge(url, "judge-model", "Answers must be yes.", api_key="sekret") as judge:
        scores = score_answers(items, ["yes", "no", "garbled"], ["judge", "exact_match"], judge=judge)
    assert scores["exact_match"] == [1.0, 0.0, 0.0]
    assert scores["judge"][:2] == [1.0, 0.0]
    assert scores["judge"][2] != scores["judge"][2]  # NaN: the reply held no grade
    assert seen[0]["auth"] == "Bearer sekret" and seen[0]["body"]["model"] == "judge-model"
    assert "Answers must be yes." in seen[0]["body"]["messages"][0]["content"]


def test_make_judge_from_project_config(judge_server: tuple[str, list[dict]], project_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.config import load_project

    url, seen = judge_server
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(
        {"evaluation": {"metrics": ["judge"], "primary_metric": "judge",
                        "judge": {"base_url": url, "model": "local-judge", "api_key_env": "MY_JUDGE_KEY"}}}))
    monkeypatch.setenv("MY_JUDGE_KEY", "k123")
    judge = make_judge(load_project(project_dir))
    assert judge is not None
    with judge:
        assert judge.score("q", "yes", "yes") == 1.0
    assert seen[-1]["auth"] == "Bearer k123"
    assert "A perfect answer is correct" in seen[-1]["body"]["messages"][0]["content"]  # the project's rubric


def test_judge_endpoint_failure_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = LLMJudge(f"http://127.0.0.1:{port}/v1", "m", "rubric", retries=0, timeout_s=2)
    with pytest.raises(JudgeError, match=f"127.0.0.1:{port}/v1/chat/completions"):
        judge.score("q", "a", "b")
