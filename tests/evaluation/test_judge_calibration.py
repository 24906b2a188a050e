"""The judge against people: calibration over a real OpenAI-compatible server on 127.0.0.1 (deterministic
grades; errors, rate limits and malformed replies), Cohen's kappa and accuracy per verdict, and the gate
ignoring a judge that has not earned its vote."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flywheel.config import ConfigError, EvaluationConfig, JudgeConfig, load_project
from flywheel.evaluation.gate import BLOCKED, HELD, PROMOTED, gate
from flywheel.evaluation.judge import LLMJudge
from flywheel.evaluation.judge_calibration import (
    agreement,
    calibrate_judge,
    gate_metric,
    grade_verdict,
    recent_decided_items,
)
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore

# the answer's first word decides the server's reply
GRADES = {"good": 5, "meh": 3, "bad": 1}


@pytest.fixture
def server() -> Iterator[tuple[str, Counter[str]]]:
    """OpenAI-compatible /v1/chat/completions: grade by the answer's first word; `limited` answers get one 429
    (Retry-After 0) first; `down` answers a 500; `garbled` a reply without a grade; `notjson` a body that is not JSON."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    calls: Counter[str] = Counter()

    async def completions(request: Request) -> Response:
        body = await request.json()
        answer = body["messages"][-1]["content"].split("Answer to grade:\n", 1)[1]
        word = answer.split()[0]
        calls[word] += 1
        if word == "limited" and calls[word] == 1:
            return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "0"})
        if word == "down":
            return PlainTextResponse("judge crashed", status_code=500)
        if word == "notjson":
            return PlainTextResponse("<html>oops</html>")
        content = "I cannot decide." if word == "garbled" else json.dumps(
            {"score": GRADES.get(word, 5), "reason": "deterministic"})
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": content}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1", calls
    srv.should_exit = True
    thread.join(timeout=5)


def decided_store(tmp_path: Path, items: list[tuple[str, str]], batch: str = "2026-11-02") -> ReviewStore:
    """A decision store whose batch holds one item per (answer, human verdict), decided in that order."""
    store = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    rows = [{"item_id": f"i{n}", "kind": "control", "input_key": f"q{n}", "interaction_id": f"x{n}",
             "input_text": f"question {n}?", "messages": [{"role": "user", "content": f"question {n}?"}], "output": a}
            for n, (a, _) in enumerate(items)]
    store.register_batch(batch, rows, kind="weekly")
    for n, (_, verdict) in enumerate(items):
        record_decision(store, batch, f"i{n}", "ann", verdict, text="the fixed answer" if verdict == "fix" else None)
    return store


def judge(url: str, retries: int = 1) -> LLMJudge:
    return LLMJudge(url, "judge-model", "Answers must be correct.", retries=retries, timeout_s=5)


def test_a_judge_that_agrees_with_reviewers_earns_its_vote(server, tmp_path: Path) -> None:
    url, calls = server
    items = [("good answer", "pass"), ("meh answer", "fix"), ("bad answer", "reject")] * 4
    cfg = JudgeConfig(base_url=url, model="m", min_calibration_items=10, calibration_items=50)
    with judge(url) as j:
        cal = calibrate_judge(j, decided_store(tmp_path, items), cfg)
    assert (cal.read, cal.graded, cal.failed, cal.unparsed) == (12, 12, 0, 0)
    assert cal.kappa == pytest.approx(1.0) and cal.accuracy == 1.0 and cal.trusted
    assert cal.per_verdict["fix"] == {"items": 4, "agreed": 4, "accuracy": 1.0}
    assert sum(calls.values()) == 12


def test_a_judge_that_passes_everything_is_not_trusted(server, tmp_path: Path) -> None:
    url, _ = server
    # humans fix or reject half of what the judge grades 5
    items = [("good a", "pass"), ("good b", "fix"), ("good c", "reject"), ("bad d", "reject")] * 5
    cfg = JudgeConfig(base_url=url, model="m", min_calibration_items=10, min_kappa=0.6)
    with judge(url) as j:
        cal = calibrate_judge(j, decided_store(tmp_path, items), cfg)
    assert cal.graded == 20 and not cal.trusted
    assert cal.per_verdict["pass"]["accuracy"] == 1.0 and cal.per_verdict["fix"]["accuracy"] == 0.0
    assert cal.per_verdict["reject"]["accuracy"] == 0.5 and cal.kappa is not None and cal.kappa < 0.6
    assert "not above evaluation.judge.min_kappa 0.6" in cal.reason


def test_errors_rate_limits_and_malformed_replies_cost_items_not_the_run(server, tmp_path: Path) -> None:
    url, calls = server
    # newest decision first: notjson, garbled, limited, down, then the agreeing ones
    items = [("good x", "pass")] * 6 + [("down x", "reject"), ("limited x", "pass"), ("garbled x", "fix"),
                                        ("notjson x", "pass")]
    cfg = JudgeConfig(base_url=url, model="m", min_calibration_items=8)
    with judge(url) as j:
        cal = calibrate_judge(j, decided_store(tmp_path, items), cfg)
    assert (cal.read, cal.graded, cal.unparsed, cal.failed, cal.not_sent) == (10, 7, 1, 2, 0)
    assert cal.read == cal.graded + cal.unparsed + cal.failed + cal.not_sent
    assert calls["limited"] == 2  # the 429 was retried and then graded
    assert any("HTTP 500" in e for e in cal.errors) and any("not a JSON object" in e or "JSON" in e for e in cal.errors)
    assert not cal.trusted and "only 7" in cal.reason and "2 failed" in cal.reason and "1 unparsed" in cal.reason


def test_an_endpoint_that_is_down_stops_after_a_few_failures(server, tmp_path: Path) -> None:
    url, calls = server
    cfg = JudgeConfig(base_url=url, model="m", min_calibration_items=5)
    with judge(url, retries=0) as j:
        cal = calibrate_judge(j, decided_store(tmp_path, [("down", "pass")] * 12), cfg)
    assert (cal.failed, cal.not_sent, cal.graded) == (3, 9, 0) and calls["down"] == 3
    assert not cal.trusted and cal.kappa is None


def test_recent_items_newest_first_and_limited(tmp_path: Path) -> None:
    store = decided_store(tmp_path, [("good a", "pass"), ("bad b", "reject"), ("meh c", "fix")])
    items = recent_decided_items(store, 2)
    assert [(i.item_id, i.verdict) for i in items] == [("i2", "fix"), ("i1", "reject")]
    assert items[0].answer == "meh c" and items[0].question == "question 2?"


def test_grade_to_verdict_and_kappa() -> None:
    cfg = JudgeConfig(base_url="http://x/v1", model="m", pass_min_grade=4, reject_max_grade=2)
    assert [grade_verdict((g - 1) / 4, cfg) for g in (1, 2, 3, 4, 5)] == ["reject", "reject", "fix", "pass", "pass"]
    kappa, acc, per, confusion = agreement([("pass", "pass"), ("fix", "pass"), ("reject", "reject"), ("pass", "pass")])
    assert acc == 0.75 and confusion["fix"]["pass"] == 1 and per["fix"]["accuracy"] == 0.0
    assert kappa == pytest.approx((0.75 - (3 * 2 + 1 * 1) / 16) / (1 - 7 / 16))


def test_config_refuses_inverted_grades(tmp_path: Path) -> None:
    (tmp_path / "flywheel.yaml").write_text(yaml.safe_dump({"evaluation": {"judge": {
        "base_url": "http://x/v1", "model": "m", "pass_min_grade": 2, "reject_max_grade": 3}}}))
    with pytest.raises(ConfigError, match="reject_max_grade < pass_min_grade"):
        load_project(tmp_path)


# --- the gate ------------------------------------------------------------------------------------
def _summary(judge_diff: float, chrf_diff: float, calibration: dict | None, **extra: object) -> dict:
    def block(d: float) -> dict:
        return {"candidate": 0.5 + d, "champion": 0.5, "diff": d, "ci_low": d - 0.01, "ci_high": d + 0.01, "n": 40}

    metrics = {"judge": block(judge_diff), "chrf": block(chrf_diff)}
    return {"candidate": "v2", "champion": "v1", "champion_is_base": False, "base_model": "tiny", "dataset_version": "ds",
            "eval_set_hash": "h1", "eval_set_version": 1, "overall": metrics,
            "slices": {"clean": {"n": 40, "metrics": metrics}}, "judge_calibration": calibration, **extra}


TRUSTED = {"trusted": True, "reason": "judge's Cohen's kappa with reviewers 0.810 on 120 items is above 0.6"}
UNTRUSTED = {"trusted": False, "reason": "judge's Cohen's kappa with reviewers 0.2 on 120 items is not above 0.6"}


def test_the_gate_uses_a_trusted_judge_and_ignores_an_untrusted_one() -> None:
    cfg = EvaluationConfig(metrics=["judge", "chrf"], primary_metric="judge",
                           judge=JudgeConfig(base_url="http://x/v1", model="m"))
    trusted = gate(_summary(0.1, -0.1, TRUSTED), cfg)
    assert trusted.outcome == PROMOTED and trusted.reasons[0].startswith("improvement: judge")
    assert any(r.startswith("judge trusted: ") for r in trusted.reasons)
    ignored = gate(_summary(0.1, -0.1, UNTRUSTED), cfg)
    assert ignored.outcome == BLOCKED and "regression: chrf" in ignored.reasons[0]
    assert any("judge ignored: judge's Cohen's kappa with reviewers 0.2" in r and "judges by chrf instead" in r
               for r in ignored.reasons)
    uncalibrated = gate(_summary(0.1, 0.0, None), cfg)
    assert uncalibrated.outcome == HELD and any("not calibrated against human verdicts" in r for r in uncalibrated.reasons)


def test_a_judge_alone_without_its_vote_holds_unless_something_refuses() -> None:
    cfg = EvaluationConfig(metrics=["judge"], primary_metric="judge", judge=JudgeConfig(base_url="http://x/v1", model="m"))
    assert gate_metric(cfg, UNTRUSTED)[0] is None
    held = gate(_summary(0.2, 0.0, UNTRUSTED), cfg)
    assert held.outcome == HELD and "no evidence either way" in held.reasons[-1]
    leak = [{"example_id": "e1", "input": "q"}]
    assert gate(_summary(0.2, 0.0, UNTRUSTED), cfg, leaks=leak).outcome == BLOCKED
    assert gate(_summary(0.2, 0.0, TRUSTED), cfg).outcome == PROMOTED
