"""Example sources: the shared real files and small made-up files, read = accepted + quarantined."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from flywheel.config import load_project
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome
from flywheel.curation.sources import load_source_examples, read_eval_items, write_source_examples
from tests.curation.examples import ALPACA, CHATML, SHAREGPT, write_jsonl


def test_seed_source_reads_real_files_and_conserves_counts() -> None:
    load = load_source_examples([ALPACA, SHAREGPT, CHATML], "human")
    assert load.read == 999 + 500 + 5
    assert load.read == len(load.examples) + len(load.quarantine)
    reasons = load.quarantine_reasons()
    assert reasons == {"no_user_turn": 1, "degenerate_output": 1}  # the toy file's two broken rows
    bad = [q for q in load.quarantine if q["reason"] == "no_user_turn"][0]
    assert bad["source_file"].endswith("chatml_openai_toy.jsonl") and bad["line"] >= 1 and bad["raw"]
    assert {e["source"] for e in load.examples} == {"human"}
    assert json.loads(load.examples[0]["lineage"])["format"] == "alpaca"


def test_synthetic_requires_generator_per_row_and_per_file(tmp_path: Path) -> None:
    none = write_jsonl(tmp_path / "none.jsonl", [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a."}]}])
    some = write_jsonl(tmp_path / "some.jsonl", [
        {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1."}], "generator": "gen-a"},
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2."}]},
    ])
    load = load_source_examples([none, some, tmp_path / "missing.jsonl"], "synthetic", generator_keys=("generator",))
    assert Counter(q["reason"] for q in load.quarantine) == {"file_without_generator": 1, "missing_generator": 1, "unreadable_file": 1}
    missing = next(q for q in load.quarantine if q["reason"] == "missing_generator")
    assert missing["line"] == 2 and "some.jsonl" in missing["detail"]
    assert [e["generator"] for e in load.examples] == ["gen-a"]
    assert load.read == len(load.examples) + len(load.quarantine)


def test_distilled_names_the_teacher(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "Add 2 and 3.", "input": "", "output": "5.", "teacher": "big-teacher"}])
    load = load_source_examples([f], "distilled", generator_keys=("teacher", "generator"))
    (row,) = load.examples
    assert row["source"] == "distilled" and row["generator"] == "big-teacher"


def test_write_source_examples_writes_the_table_and_its_quarantine(project_dir: Path, tmp_path: Path,
                                                                   home: FlywheelHome) -> None:
    syn = write_jsonl(tmp_path / "syn.jsonl", [
        {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1."}], "generator": "gen-a"},
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2."}]},
    ])
    cfg = yaml.safe_load((project_dir / "flywheel.yaml").read_text(encoding="utf-8"))
    cfg["sources"]["synthetic"] = [str(syn)]
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    project = load_project(project_dir)
    load, out = write_source_examples(project, home, "synthetic_examples")
    assert out == home.warehouse("synthetic_examples", "all")
    assert pq.read_table(out).column("generator").to_pylist() == ["gen-a"]
    assert pq.read_table(home.quarantine("synthetic_examples", "all")).column("reason").to_pylist() == ["missing_generator"]
    assert load.read == 2
    with pytest.raises(InputError, match="unknown example source table"):
        write_source_examples(project, home, "nope")


def test_missing_eval_set_reads_as_none(tmp_path: Path) -> None:
    items = read_eval_items(tmp_path / "current.parquet")
    assert items.rows is None and items.path.endswith("current.parquet")


def test_generation_runs_are_sources_with_their_lineage(project_dir: Path, home: FlywheelHome) -> None:
    msgs = [{"role": "user", "content": "q9"}, {"role": "assistant", "content": "a9."}]
    home.generated("synthetic").mkdir(parents=True)
    home.generated("distilled").mkdir(parents=True)
    write_jsonl(home.generated("synthetic", "2026-01-05"), [
        {"messages": msgs, "generator": "gen-a", "prompt_version": "v3", "prompt_sha": "abc", "generator_family": "llama"}])
    write_jsonl(home.generated("distilled", "2026-01-05"), [
        {"messages": msgs, "teacher": "big", "interaction_id": "i-1"}])
    project = load_project(project_dir)
    load, _ = write_source_examples(project, home, "synthetic_examples")
    assert [e["generator"] for e in load.examples] == ["gen-a"]
    lineage = json.loads(load.examples[0]["lineage"])
    assert lineage["prompt_version"] == "v3" and lineage["generator_family"] == "llama"
    assert lineage["file"] == str(home.generated("synthetic", "2026-01-05"))
    load, _ = write_source_examples(project, home, "distilled_examples")
    assert load.examples[0]["generator"] == "big" and json.loads(load.examples[0]["lineage"])["interaction_id"] == "i-1"
    assert not write_source_examples(project, home, "seed_examples")[0].examples
