"""The collapse watch: diversity and reference-model perplexity across generations, with warnings."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.config import EndpointConfig, load_project
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_json, write_jsonl, write_parquet, write_text
from flywheel.curation.collapse import collapse_markdown, collapse_watch, dataset_series
from tests.generation.openai_server import serve_openai

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()


def _varied(i: int) -> str:
    return " ".join(WORDS[(i * k) % len(WORDS)] * (1 + (i + k) % 3) for k in range(1, 7))


def _row(answer: str, i: int, generator: str = "gen-a") -> dict:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": answer}],
            "generator": generator}


def _dataset(home: FlywheelHome, version: str, answers: list[str], previous: str | None) -> None:
    rows = [make_example(_row(a, i)["messages"], "synthetic", generator="gen-a") for i, a in enumerate(answers)]
    rows.append(make_example(_row("human answer", 99)["messages"], "human"))
    write_parquet(examples_table(rows), home.dataset(version) / "train.parquet")
    write_json({"version": version, "previous_version": previous}, home.dataset(version) / "manifest.json")
    write_text(version + "\n", home.path("datasets", "LATEST"))


def test_narrowing_generations_warn(project_dir: Path, home: FlywheelHome) -> None:
    write_jsonl([_row(_varied(i), i) for i in range(30)], home.generated("synthetic", "2026-01-05"))
    write_jsonl([_row("the same short answer every time", i) for i in range(30)], home.generated("synthetic", "2026-01-12"))
    write_jsonl([{**_row(_varied(i), i, None), "teacher": "big"} for i in range(10)], home.generated("distilled", "2026-01-05"))
    _dataset(home, "v1", [_varied(i) for i in range(20)], None)
    _dataset(home, "v2", ["same answer"] * 20, "v1")
    assert [v for v, _ in dataset_series(home)["dataset:gen-a"]] == ["v1", "v2"]

    project = load_project(project_dir)
    with serve_openai() as (url, seen):
        project.generation.reference_model = EndpointConfig(base_url=url, model="ref-lm")
        report = collapse_watch(project, home)
        scored = len([s for s in seen if s["path"] == "completions"])
        again = collapse_watch(project, home)  # cached: no new requests
        assert len([s for s in seen if s["path"] == "completions"]) == scored > 0
    assert again.rows == report.rows
    series = {(r["series"], r["generation"]): r for r in report.rows}
    first, second = series[("synthetic:gen-a", "synthetic/2026-01-05")], series[("synthetic:gen-a", "synthetic/2026-01-12")]
    assert first["ppl_var"] > 0 and second["ppl_var"] == 0 and second["distinct_2"] < first["distinct_2"]
    assert ("distilled:big", "distilled/2026-01-05") in series and ("dataset:generated", "v2") in series
    text = "\n".join(report.warnings)
    assert "synthetic:gen-a: distinct_2" in text and "synthetic:gen-a: perplexity variance" in text
    assert "dataset:gen-a: distinct_1" in text and "distilled:big" not in text  # one generation: nothing to compare
    assert json.loads((home.reports() / "collapse" / "latest.json").read_text())["warnings"] == report.warnings
    assert "| synthetic:gen-a | synthetic/2026-01-12 | 30 |" in collapse_markdown(report)


def test_without_reference_or_data(project_dir: Path, home: FlywheelHome) -> None:
    project = load_project(project_dir)
    report = collapse_watch(project, home)
    assert not report.rows and not report.warnings and len(report.notes) == 2
    write_jsonl([_row(_varied(i), i) for i in range(8)], home.generated("synthetic", "2026-01-05"))
    report = collapse_watch(project, home)
    assert report.rows[0]["ppl_mean"] is None and report.rows[0]["distinct_1"] > 0


def test_unreachable_reference_is_a_note_not_a_crash(project_dir: Path, home: FlywheelHome) -> None:
    write_jsonl([_row(_varied(i), i) for i in range(8)], home.generated("synthetic", "2026-01-05"))
    project = load_project(project_dir)
    project.generation.reference_model = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="ref", max_retries=0,
                                                        timeout_s=1)
    report = collapse_watch(project, home)
    assert report.rows[0]["ppl_mean"] is None
    assert any(n.startswith("perplexity not measured") for n in report.notes)
    assert not json.loads((home.reports() / "collapse" / "cache.json").read_text())  # retried next time
