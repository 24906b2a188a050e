"""The CLI's runs belong to the code location; light jobs run their steps in one process; the `dg` CLI
loads the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from assets.resources import FlywheelResource
from flywheel.core.storage import FlywheelHome
from jobs import ALL_JOBS
from jobs.runner import CODE_LOCATION, InstanceJobRunner
from tests.dagster.test_schedules import _land_days

REPO = Path(__file__).resolve().parents[2]
DAY = "2026-10-27"


def _telemetry_off(dagster_home: Path) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")


def test_cli_runs_carry_the_webservers_code_location(tmp_path: Path, project_dir: Path, home: FlywheelHome,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of InstanceJobRunner (what `flywheel demo` / `flywheel backfill` use) is stored with the remote
    origin the webserver gives the same job when it loads workspace.yaml, so the UI lists it under the
    location (timeline, job runs and partitions filter on it); its tags, partition and outcome are intact."""
    _land_days(home, [DAY])
    monkeypatch.setenv("FLYWHEEL_PROJECT", str(project_dir))
    dagster_home = tmp_path / "dagster_home"
    _telemetry_off(dagster_home)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runner = InstanceJobRunner(instance, FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root)))
        outcome = runner.run("daily_capture", partition_key=DAY, tags={"flywheel/trigger": "backfill"})
        assert outcome.success, outcome.error
        assert outcome.materialized["interactions"]["rows_read"] > 0
        assert outcome.checks and not outcome.failed_checks()

        run = instance.get_run_by_id(outcome.run_id)
        assert run is not None and run.remote_job_origin is not None
        assert run.tags["dagster/partition"] == DAY and run.tags["flywheel/trigger"] == "backfill"

        # the webserver's view: the workspace file loaded through a code server, as `dagster-webserver -w` does
        with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])) as ctx:
            request = ctx.create_request_context()
            assert not request.code_location_errors()
            location = request.get_code_location(CODE_LOCATION)
            (repository,) = location.get_repositories().values()
            served = repository.get_full_job("daily_capture").get_remote_origin()
        # the UI matches runs to a location by these names (its working directory may be written either way)
        origin = run.remote_job_origin
        assert (origin.location_name, origin.repository_origin.repository_name, origin.job_name) == (
            served.location_name, served.repository_origin.repository_name, served.job_name)
        assert origin.location_name == CODE_LOCATION and origin.repository_origin.repository_name == repository.name
        assert origin.repository_origin.code_location_origin.loadable_target_origin.module_name == "definitions"

        # what the UI's job page and partition view filter on
        label = served.repository_origin.get_label()
        listed = instance.get_runs(dg.RunsFilter(job_name="daily_capture", tags={REPOSITORY_LABEL_TAG: label}))
        assert [r.run_id for r in listed] == [outcome.run_id]


def test_a_failed_step_is_reported(tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that raises fails the run and the outcome names the step and its error."""
    monkeypatch.setenv("FLYWHEEL_PROJECT", str(project_dir))
    not_a_folder = tmp_path / "home-is-a-file"
    not_a_folder.write_text("", encoding="utf-8")
    broken = FlywheelResource(project_dir=str(project_dir), home_dir=str(not_a_folder))
    runner = InstanceJobRunner(dg.DagsterInstance.ephemeral(), broken, quiet=True)  # the demo's console level
    outcome = runner.run("daily_capture", partition_key=DAY)
    assert not outcome.success and outcome.failed_steps and outcome.error
    assert outcome.error.startswith(outcome.failed_steps[0])


def test_light_jobs_run_their_steps_in_one_process() -> None:
    """Every job runs its steps in the run's own process (no process per step); training still leaves it
    through Dagster Pipes. Materializing assets outside a job (the UI's asset graph) does the same."""
    from definitions import defs

    assert {j.name for j in ALL_JOBS} == {"daily_capture", "weekly_labeling", "weekly_reviewed_examples",
                                          "source_admission", "retrain"}
    for job in ALL_JOBS:
        resolved = defs.resolve_job_def(job.name)
        assert resolved.executor_def.name == dg.in_process_executor.name, job.name
    implicit = defs.resolve_implicit_global_asset_job_def()
    assert implicit.executor_def.name == dg.in_process_executor.name


def test_dg_project_config_names_the_same_location() -> None:
    """pyproject's [tool.dg.project] loads what workspace.yaml loads: module `definitions` as `flywheel`."""
    import yaml

    dg_project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["dg"]["project"]
    (entry,) = yaml.safe_load((REPO / "workspace.yaml").read_text(encoding="utf-8"))["load_from"]
    module = entry["python_module"]
    assert dg_project["code_location_name"] == module["location_name"] == CODE_LOCATION
    assert dg_project["code_location_target_module"] == module["module_name"] == "definitions"


def _dg() -> Path:
    exe = Path(sys.executable).parent / "dg"
    if not exe.exists() and not shutil.which("dg"):
        pytest.skip("the dg CLI (dagster-dg-cli, in the dev extra) is not installed")
    return exe if exe.exists() else Path(shutil.which("dg") or "dg")


@pytest.mark.parametrize("args", [["check", "defs"], ["list", "defs", "--json"]])
def test_dg_cli_loads_the_project(tmp_path: Path, args: list[str]) -> None:
    """`dg check defs` and `dg list defs` work on the repo, without warnings the user did not cause."""
    dagster_home = tmp_path / "dagster_home"
    _telemetry_off(dagster_home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(dagster_home), "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    proc = subprocess.run([str(_dg()), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    if args[0] == "check":
        assert "All definitions loaded successfully" in proc.stdout
    else:
        import json

        listed = json.loads(proc.stdout)
        assert {j["name"] for j in listed["jobs"]} >= {j.name for j in ALL_JOBS}
