"""The retrain chain's quarterly partitions: a quarter's dataset holds what was reviewed before the
quarter's end, the newest quarter moves `datasets/LATEST` and a past quarter's rebuild does not, the retrain
job and its backfill plan are quarterly. (The full chain, backfill included, runs in test_end_to_end.)"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from assets import curation
from assets.partitions import quarterly_partitions_for
from definitions import defs
from flywheel.config import load_project
from flywheel.core.quarters import all_quarters, newest_quarter, read_quarter
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.curation.versions import latest_version, read_manifest
from jobs.runner import partition_keys
from tests.dagster.test_curation_assets import SOURCES, _eval_set, _project, _resource, _review_admission

Q3, Q4 = "2026-07-01", "2026-10-01"


def _reviewed_week(home: FlywheelHome, monday: date, topic: str) -> None:
    """A week of reviewed traffic: four real examples about `topic`."""
    rows = [make_example([{"role": "user", "content": f"how do i {verb} my {topic}"},
                          {"role": "assistant", "content": f"To {verb} your {topic}, open Settings."}], "real")
            for verb in ("reset", "rename", "export", "share")]
    write_parquet(examples_table(rows), home.warehouse("reviewed_examples", monday.isoformat()))


def test_quarter_datasets_read_what_was_reviewed_before_the_quarter_ended(
        project_dir: Path, tmp_path: Path, home: FlywheelHome) -> None:
    _project(project_dir, tmp_path)
    _eval_set(home, n_leaked=0)
    resources = _resource(project_dir, home)
    dg.materialize(SOURCES, resources=resources)
    _review_admission(home)
    _reviewed_week(home, date(2026, 9, 21), "notebook")  # ends 2026-09-28: in Q3
    _reviewed_week(home, date(2026, 9, 28), "tag")  # ends 2026-10-05: straddles the quarter's end -> Q4
    _reviewed_week(home, date(2026, 11, 2), "reminder")  # in Q4

    q4 = dg.materialize([curation.training_dataset], resources=resources, partition_key=Q4)
    meta4 = q4.asset_materializations_for_node("training_dataset")[0].metadata
    v4 = meta4["version"].value
    assert meta4["quarter"].value == "2026-Q4" and latest_version(home) == v4
    assert read_manifest(home, v4)["counts"]["by_source"]["real"] == 12

    # a backfill of the closed quarter, afterwards: only the week that ended before 2026-10-01
    q3 = dg.materialize([curation.training_dataset], resources=resources, partition_key=Q3)
    v3 = q3.asset_materializations_for_node("training_dataset")[0].metadata["version"].value
    assert v3 != v4 and read_manifest(home, v3)["counts"]["by_source"]["real"] == 4
    assert latest_version(home) == v4  # the past quarter's rebuild leaves LATEST on the newest quarter
    assert read_quarter(home, Q3)["reviewed_weeks"] == ["2026-09-21"]
    assert read_quarter(home, Q4)["reviewed_weeks"] == ["2026-09-21", "2026-09-28", "2026-11-02"]
    assert [r["label"] for r in all_quarters(home)] == ["2026-Q3", "2026-Q4"] and newest_quarter(home) == Q4


def test_the_retrain_job_is_quarterly_from_the_projects_start(project_dir: Path) -> None:
    job = defs.resolve_job_def("retrain")
    assert isinstance(job.partitions_def, dg.TimeWindowPartitionsDefinition)
    partitions = quarterly_partitions_for(load_project(project_dir).model_copy(update={"start_date": "2026-02-15"}))
    keys = partitions.get_partition_keys()
    assert keys[:3] == ["2026-01-01", "2026-04-01", "2026-07-01"]
    # the current quarter is a partition while it is open (a metric-drop retrain materializes it)
    today = date.today()
    assert keys[-1] <= today.isoformat() < (date.fromisoformat(keys[-1]) + timedelta(days=93)).isoformat()
    assert partition_keys("retrain", "2026-Q1", "2026-08-15") == ["2026-01-01", "2026-04-01", "2026-07-01"]
