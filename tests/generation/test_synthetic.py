"""Synthetic generation against a real OpenAI-compatible server: several generators, failures, budgets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel.capture.profile import build_vocabulary, input_kinds
from flywheel.config import ConfigError, GeneratorConfig
from flywheel.core.storage import FlywheelHome
from flywheel.generation.runs import report_path
from flywheel.generation.synthetic import ReplyError, generate_synthetic, parse_examples, plan_quotas
from tests.generation.conftest import MESSY, WEEK, endpoint, write_interactions, write_project

NO_WAIT = {"sleep": lambda s: None}


def _gens(*specs: tuple[str, float]) -> list[GeneratorConfig]:
    return [GeneratorConfig(base_url="http://x/v1", model=m, family=m, weight=w) for m, w in specs]


def test_quotas_split_by_weight_under_the_share_cap() -> None:
    assert plan_quotas(_gens(("a", 1), ("b", 1)), 10, 0.7) == {"a": 5, "b": 5}
    assert plan_quotas(_gens(("a", 9), ("b", 1)), 10, 0.7) == {"a": 7, "b": 3}  # a capped, excess to b
    assert plan_quotas(_gens(("a", 1), ("b", 1)), 10, 0.4) == {"a": 4, "b": 4}  # both capped: the run asks less
    assert plan_quotas(_gens(("a", 1)), 10, 0.5) == {"a": 10}  # one generator: no one to share with


@given(st.lists(st.floats(0.1, 10), min_size=2, max_size=6), st.integers(0, 500), st.floats(0.05, 1.0))
def test_quotas_never_exceed_total_or_cap(weights: list[float], total: int, share: float) -> None:
    gens = _gens(*[(f"g{i}", w) for i, w in enumerate(weights)])
    q = plan_quotas(gens, total, share)
    assert sum(q.values()) <= total and all(v <= share * total + 1e-9 for v in q.values())
    assert sum(q.values()) >= min(total, int(share * total) * len(gens)) - len(gens)


def test_parse_examples_forms() -> None:
    items = [{"input": "a", "output": "b"}]
    assert parse_examples(json.dumps({"examples": items})) == items
    assert parse_examples("Here you go:\n```json\n" + json.dumps({"examples": items}) + "\n```") == items
    assert parse_examples("noise " + json.dumps(items) + " trailing") == items
    for bad, reason in [("", "empty_reply"), ('{"examples": [{"input": "x', "unparseable_reply"),
                        ('{"data": 1}', "unparseable_reply"), ("no json here", "unparseable_reply")]:
        with pytest.raises(ReplyError) as info:
            parse_examples(bad)
        assert info.value.reason == reason


@given(st.text(max_size=300))
def test_parse_examples_never_crashes(text: str) -> None:
    try:
        assert isinstance(parse_examples(text), list)
    except ReplyError as exc:
        assert exc.reason in ("empty_reply", "unparseable_reply")


def test_config_refuses_generators_of_one_family(project_dir: Path) -> None:
    with pytest.raises(ConfigError, match="min_generator_families"):
        write_project(project_dir, {"generators": [endpoint("http://x/v1", "gen-alpha", "llama"),
                                                   endpoint("http://x/v1", "gen-beta", "llama", name="other")]})


def test_several_generators_with_failures(openai_server: tuple[str, list[dict[str, Any]]], project_dir: Path,
                                          home: FlywheelHome) -> None:
    url, seen = openai_server
    write_interactions(home, "2026-01-06", MESSY * 3)
    project = write_project(project_dir, {
        "max_examples": 20, "examples_per_request": 2,
        "generators": [endpoint(url, "gen-alpha", "llama", prompt_version="a1"),
                       endpoint(url, "gen-beta", "qwen", prompt="Write support tickets.", prompt_version="b7"),
                       endpoint(url, "gen-broken", "mistral"),
                       endpoint(url, "gen-limited", "gemma"),
                       endpoint(url, "gen-garbled", "phi")]})
    run = generate_synthetic(project, home, WEEK, **NO_WAIT)
    t = run.tallies
    assert run.target == 20 and {n: x.quota for n, x in t.items()} == dict.fromkeys(t, 4)
    assert (t["gen-alpha"].accepted, t["gen-beta"].accepted, t["gen-limited"].accepted) == (4, 4, 4)
    assert t["gen-broken"].accepted == 0 and t["gen-broken"].failures == {"http_500": 3}
    assert "3 failed requests in a row" in t["gen-broken"].stopped
    assert t["gen-limited"].rate_limited >= 2 and not t["gen-limited"].stopped
    assert t["gen-garbled"].accepted == 0 and t["gen-garbled"].failures["unparseable_reply"] >= 1
    assert t["gen-garbled"].failures["missing_field"] == 2
    assert any("gen-broken: 0 of 4 written" in n for n in run.notes)
    assert run.tokens == sum(x.tokens for x in t.values()) > 0

    rows = [json.loads(line) for line in home.generated("synthetic", WEEK).read_text().splitlines()]
    assert len(rows) == 12 == len(run.rows)
    assert {r["generator"] for r in rows} == {"gen-alpha", "gen-beta", "gen-limited"}
    assert {r["prompt_version"] for r in rows if r["generator"] == "gen-beta"} == {"b7"}
    sha = {r["generator"]: r["prompt_sha"] for r in rows}
    assert sha["gen-alpha"] != sha["gen-beta"]  # each generator its own prompt (built-in variants cycle: 0 and 3 share)
    beta_prompt = next(s for s in seen if s["model"] == "gen-beta")["body"]["messages"][0]["content"]
    assert beta_prompt.startswith("Write support tickets.") and "A perfect answer is correct" in beta_prompt

    quarantine = pq.read_table(home.quarantine("generated_synthetic", WEEK)).to_pylist()
    assert {q["source_file"] for q in quarantine} == {"gen-garbled"}
    assert all(q["reason"] in ("unparseable_reply", "missing_field") and "gen-garbled, request" in q["detail"]
               for q in quarantine)
    report = json.loads(report_path(home, "synthetic", WEEK).read_text())
    assert report["accepted"] == 12 and report["quarantined"] == len(quarantine)

    # messy inputs in production's proportions: the production share of each style kind, within rounding
    vocab = build_vocabulary(MESSY)
    lower = sum(input_kinds(r["messages"][-2]["content"], vocab)["lower_case"] for r in rows) / len(rows)
    assert lower >= run.facts["production_profile"]["shares"]["lower_case"] - 0.15
    assert run.facts["input_kinds"]["lower_case"]["generated"] == pytest.approx(lower, abs=1e-3)


def test_budgets_and_ratio_bound_the_run(openai_server: tuple[str, list[dict[str, Any]]], project_dir: Path,
                                         home: FlywheelHome) -> None:
    url, _ = openai_server
    gens = [endpoint(url, "gen-alpha", "llama", max_output_tokens=100),
            endpoint(url, "gen-beta", "qwen", max_output_tokens=100)]
    project = write_project(project_dir, {"max_examples": 100, "max_tokens": 700, "examples_per_request": 2,
                                          "generators": gens}, curation={"max_synthetic_per_real": 2.0})
    run = generate_synthetic(project, home, WEEK, **NO_WAIT)
    assert run.target == 12  # 6 seed rows x 2
    assert any("token budget spent" in t.stopped for t in run.tallies.values())
    assert run.tokens <= 700 and 0 < len(run.rows) < 12

    # the next week's run sees this one's rows on the generated side
    project = write_project(project_dir, {"generators": gens}, curation={"max_synthetic_per_real": 2.0})
    again = generate_synthetic(project, home, "2026-01-12", **NO_WAIT)
    assert again.target == 12 - len(run.rows)


def test_no_real_rows_no_synthetic(openai_server: tuple[str, list[dict[str, Any]]], project_dir: Path,
                                   home: FlywheelHome) -> None:
    url, seen = openai_server
    project = write_project(project_dir, {"generators": [endpoint(url, "gen-alpha", "llama"),
                                                         endpoint(url, "gen-beta", "qwen")]})
    project.sources.seed = []
    run = generate_synthetic(project, home, WEEK, **NO_WAIT)
    assert run.target == 0 and not run.rows and not seen and not home.generated("synthetic", WEEK).exists()
    assert "0 real or human rows" in run.notes[0]
