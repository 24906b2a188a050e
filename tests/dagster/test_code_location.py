"""The code location is built for its project: partitions, schedules and retrain tags follow flywheel.yaml;
the library reaches it only through the `flywheel.orchestrator` entry point."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from flywheel.ops.runs import load_orchestrator
from tests.shared_data import REPO

PROBE = """
import json
import definitions
from assets.partitions import daily_partitions, weekly_partitions
from jobs import retrain
sched = {s.name: (s.cron_schedule, s.execution_timezone) for s in definitions.defs.schedules}
print(json.dumps({"daily": daily_partitions.get_first_partition_key(),
                  "weekly": weekly_partitions.get_first_partition_key(),
                  "tags": retrain.tags, "schedules": sched}))
"""


def _probe(project_dir: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "FLYWHEEL_PROJECT"}
    if project_dir is not None:
        env["FLYWHEEL_PROJECT"] = str(project_dir)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_partitions_schedules_and_tags_follow_the_project(project_dir: Path) -> None:
    cfg = yaml.safe_load((project_dir / "flywheel.yaml").read_text())
    cfg["start_date"] = "2026-06-03"  # a Wednesday
    cfg.setdefault("training", {})["device_tags"] = {"flywheel/gpu": "2", "team": "search"}
    cfg.setdefault("automation", {})["timezone"] = "Europe/Berlin"
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")

    got = _probe(project_dir)
    assert got["daily"] == "2026-06-03"
    assert got["weekly"] == "2026-06-01"  # the Monday of the start date's week
    assert got["tags"]["flywheel/gpu"] == "2" and got["tags"]["team"] == "search"
    assert "nvidia.com/gpu" in got["tags"]["dagster-k8s/config"]  # the default GPU request stays
    assert {tz for _, tz in got["schedules"].values()} == {"Europe/Berlin"}


def test_without_a_project_the_defaults_apply(tmp_path: Path) -> None:
    got = _probe(tmp_path)  # a folder without flywheel.yaml
    assert got["daily"] == "2026-01-01"
    assert got["weekly"] == "2025-12-29"


def test_the_library_never_imports_dagster_or_the_code_location() -> None:
    banned = {"dagster", "dagster_postgres", "dagster_webserver", "assets", "jobs", "schedules", "sensors", "definitions"}
    offenders = []
    for path in sorted((REPO / "flywheel").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in banned]
    assert offenders == []


def test_the_cli_finds_the_orchestrator_through_its_entry_point() -> None:
    orchestrator = load_orchestrator()
    assert set(orchestrator.backfill_steps) >= {"capture", "labeling"}
    job, keys = orchestrator.backfill_plan("capture", "2026-03-01", "2026-03-03")
    assert job == "daily_capture" and keys == ["2026-03-01", "2026-03-02", "2026-03-03"]
