"""Dataset versions: the content hash, the files of a version, `datasets/LATEST` and the previous version."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from flywheel.config import CurationConfig
from flywheel.core.storage import FlywheelHome, write_text
from flywheel.curation.context import EvalItems
from flywheel.curation.pipeline import curate
from flywheel.curation.versions import (
    content_hash,
    latest_path,
    latest_version,
    read_manifest,
    write_dataset_version,
)
from tests.curation.examples import ex, varied_rows


def test_version_is_content_hash_independent_of_order(tmp_path: Path) -> None:
    rows = varied_rows(40)
    cfg = CurationConfig(min_examples=10, target_examples=20, review_sample_size=5)
    a = curate(rows, cfg, EvalItems([]))
    b = curate(list(reversed(rows)), cfg, EvalItems([]))
    assert content_hash(a.rows) == content_hash(b.rows)
    home = FlywheelHome(tmp_path / "home")
    dv = write_dataset_version(home, a, rubric_text="# rubric", rubric_path="rubric.md", rubric_problem=None, created="x")
    dv2 = write_dataset_version(home, b, rubric_text="# rubric", rubric_path="rubric.md", rubric_problem=None, created="y")
    assert dv.version == dv2.version == content_hash(a.rows)[:12]
    for name in ("train.parquet", "drops.parquet", "flagged.parquet", "conflicts.parquet", "card.md", "manifest.json"):
        assert (dv.path / name).exists()
    assert len((dv.path / "review_sample.jsonl").read_text().splitlines()) == 5
    assert pq.read_table(dv.path / "train.parquet").num_rows == len(a.rows)
    assert latest_version(home) == dv.version
    card = (dv.path / "card.md").read_text()
    assert dv.version in card and "## Drop reasons" in card and "## Diversity" in card and "> # rubric" in card


def test_blocking_rules_keep_latest_untouched(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    cfg = CurationConfig(min_examples=100, target_examples=100)
    result = curate(varied_rows(20), cfg, EvalItems(None, "warehouse/fixed_eval_set/current.parquet"))
    dv = write_dataset_version(home, result, rubric_text="r", rubric_path="r.md", rubric_problem=None)
    failing = {r.name for r in dv.blocking_failures}
    assert failing == {"size_floor", "no_eval_contamination"}
    assert "fixed_eval_set" in next(r.message for r in dv.rules if r.name == "no_eval_contamination")
    assert latest_version(home) is None


def test_diversity_drop_is_measured_against_previous_version(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    cfg = CurationConfig(min_examples=10, target_examples=10)
    varied = varied_rows(60)
    write_dataset_version(home, curate(varied, cfg, EvalItems([])), rubric_text="r", rubric_path="r.md", rubric_problem=None)
    narrow = [ex(f"question {i}", "Please open settings and follow the steps there.", "human") for i in range(60)]
    narrow = [ex(r["messages"][0]["content"], f"Please open settings and follow the steps there, case {i}.") for i, r in enumerate(narrow)]
    dv = write_dataset_version(home, curate(varied[:10] + narrow, cfg, EvalItems([])), rubric_text="r", rubric_path="r.md",
                               rubric_problem=None)
    rule = next(r for r in dv.rules if r.name == "diversity_drop")
    assert not rule.passed and dv.manifest["diversity_changes"]


def test_latest_version_reads_the_pointer(tmp_path: Path) -> None:
    """The one reader of `datasets/LATEST`: missing or empty is None, else the stripped version."""
    home = FlywheelHome(tmp_path / "home")
    assert latest_version(home) is None and read_manifest(home, "nope") is None
    write_text("\n", latest_path(home))
    assert latest_version(home) is None
    write_text("abc123def456\n", latest_path(home))
    assert latest_version(home) == "abc123def456" and latest_path(home) == home.path("datasets", "LATEST")
