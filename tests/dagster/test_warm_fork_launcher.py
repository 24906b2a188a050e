"""The warm-fork run launcher through Dagster's own CLI: runs succeed, fail and cancel as with the default one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus

from launcher.warm_fork import HOST_TAG, PID_TAG, WarmForkRunLauncher

REPO = Path(__file__).resolve().parents[2]
LOCATION = '''
import os
import time

import dagster as dg

DAYS = dg.DailyPartitionsDefinition(start_date="2026-10-26")


@dg.asset(partitions_def=DAYS)
def day_file(context: dg.AssetExecutionContext) -> None:
    out = os.path.join(os.environ["OUT_DIR"], context.partition_key)
    with open(out, "w") as fh:
        fh.write(str(os.getpid()))


@dg.op
def fails() -> None:
    raise RuntimeError("this op fails on purpose")


@dg.op
def sleeps() -> None:
    time.sleep(120)


@dg.job
def failing():
    fails()


@dg.job
def sleeping():
    sleeps()


days = dg.define_asset_job("days", selection=[day_file], executor_def=dg.in_process_executor)
defs = dg.Definitions(assets=[day_file], jobs=[days, failing, sleeping])
'''


@pytest.fixture
def location(tmp_path: Path) -> dict[str, str]:
    """A code location, an instance with the warm-fork launcher, and the environment to use them."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "definitions.py").write_text(LOCATION, encoding="utf-8")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    instance_yaml = ("telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
                     "  class: DefaultRunCoordinator\n") + (REPO / "launcher" / "instance.yaml").read_text()
    (dagster_home / "dagster.yaml").write_text(instance_yaml, encoding="utf-8")
    (tmp_path / "out").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    return env | {"DAGSTER_HOME": str(dagster_home), "OUT_DIR": str(tmp_path / "out"), "CODE": str(code)}


def dagster_cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "dagster"), *args, "-m", "definitions",
                             "-d", env["CODE"]], cwd=env["CODE"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(instance: dg.DagsterInstance, job: str, n: int, done, timeout_s: float = 120) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = instance.get_runs(dg.RunsFilter(job_name=job))
        if len(runs) == n and all(done(r) for r in runs):
            return runs
        time.sleep(0.2)
    raise AssertionError(f"{job}: runs {[(r.run_id[:8], r.status) for r in runs]} after {timeout_s} s")


def test_the_instance_config_loads_the_launcher(location: dict[str, str]) -> None:
    with dg.DagsterInstance.from_config(location["DAGSTER_HOME"]) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, WarmForkRunLauncher)
        assert {"dagster", "pandas", "pyarrow.parquet"} <= set(launcher.preload_modules)


def test_a_backfill_runs_each_partition_in_a_forked_worker(location: dict[str, str], tmp_path: Path) -> None:
    days = ["2026-10-26", "2026-10-27", "2026-10-28"]
    cli = dagster_cli(location, "job", "backfill", "-j", "days", "--partitions", ",".join(days), "--noprompt")
    output, _ = cli.communicate(timeout=180)  # the CLI exits once its forked runs have ended
    assert cli.returncode == 0, output
    with dg.DagsterInstance.from_config(location["DAGSTER_HOME"]) as instance:
        runs = wait_for(instance, "days", 3, lambda r: r.is_finished)
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, output
        pids = {r.tags["dagster/partition"]: r.tags[PID_TAG] for r in runs}
        assert all(r.tags[HOST_TAG] for r in runs)
        # each partition ran in the worker its run names, none in the CLI's process
        assert {day: (tmp_path / "out" / day).read_text() for day in days} == pids
        assert str(cli.pid) not in pids.values()
        # a finished worker is gone: run monitoring would see it
        health = instance.run_launcher.check_run_worker_health(runs[0])
        assert health.status == WorkerStatus.FAILED


def test_a_failing_run_is_reported_failed(location: dict[str, str]) -> None:
    cli = dagster_cli(location, "job", "launch", "-j", "failing")
    output, _ = cli.communicate(timeout=180)
    with dg.DagsterInstance.from_config(location["DAGSTER_HOME"]) as instance:
        (run,) = wait_for(instance, "failing", 1, lambda r: r.is_finished)
        assert run.status == dg.DagsterRunStatus.FAILURE, output
        failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        assert "this op fails on purpose" in str(failures[0].dagster_event.event_specific_data.error)


def test_terminate_interrupts_the_worker_and_cancels_the_run(location: dict[str, str]) -> None:
    cli = dagster_cli(location, "job", "launch", "-j", "sleeping")
    try:
        with dg.DagsterInstance.from_config(location["DAGSTER_HOME"]) as instance:
            (run,) = wait_for(instance, "sleeping", 1, lambda r: r.status == dg.DagsterRunStatus.STARTED)
            assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
            assert instance.run_launcher.terminate(run.run_id)
            (run,) = wait_for(instance, "sleeping", 1, lambda r: r.is_finished, timeout_s=60)
            assert run.status == dg.DagsterRunStatus.CANCELED
            assert not instance.run_launcher.terminate(run.run_id)  # a finished run: nothing to stop
        output, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()


def test_a_location_under_another_python_goes_through_the_default_launcher(tmp_path: Path) -> None:
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

    def run_under(executable: str) -> dg.DagsterRun:
        pointer = ModuleCodePointer("definitions", "defs", working_directory=None)
        origin = JobPythonOrigin("days", RepositoryPythonOrigin(executable_path=executable, code_pointer=pointer))
        return dg.DagsterRun(job_name="days", job_code_origin=origin)

    other_env = tmp_path / "other-venv" / "bin"
    other_env.mkdir(parents=True)
    (other_env / "python").symlink_to(os.path.realpath(sys.executable))  # another venv of the same interpreter
    launcher = WarmForkRunLauncher()
    assert launcher._runs_here(run_under(sys.executable))
    assert launcher._runs_here(run_under(str(Path(sys.executable).parent / "python3")))
    assert not launcher._runs_here(run_under(str(other_env / "python")))
    assert not launcher._runs_here(dg.DagsterRun(job_name="days"))
