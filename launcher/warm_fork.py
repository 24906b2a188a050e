"""A run launcher for one machine: each run starts in a process forked from a warm server.

Dagster's DefaultRunLauncher asks the code server to spawn a fresh Python for every run, and the code
server waits until that process has imported Dagster and opened the instance before it takes the next
launch: about a second per run here, one run after another, whatever the run does (a backfill of
small days is mostly that). This launcher keeps a `multiprocessing` forkserver that imported Dagster
and the configured libraries once; each run is a fork of it that loads the code location afresh (an
edited location is used by the next run, as with the code server), opens the instance and executes
the run as `dagster api execute_run` does. Launching returns once the fork exists, so runs overlap.

Runs whose location runs under another Python than this process's go through the DefaultRunLauncher,
as does everything where there is no forkserver (Windows). The run worker's pid and host are run tags:
`terminate` interrupts that process (the run is canceled) and run monitoring sees a vanished worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, LaunchRunContext, WorkerStatus
from dagster._serdes import ConfigurableClassData

PID_TAG = "flywheel/run_worker_pid"
HOST_TAG = "flywheel/run_worker_host"
# imported by the forkserver whatever the configuration: what every run worker needs first
ALWAYS_PRELOADED = ("dagster", "dagster._cli.api")


def execute_run_in_worker(run_id: str, instance_ref: Any) -> None:
    """The forked run worker: what `dagster api execute_run` does with the run (interrupts cancel it)."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), dg.DagsterInstance.from_ref(instance_ref) as instance:
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


def _bin_dir(executable: str) -> str:
    return os.path.realpath(os.path.dirname(os.path.abspath(executable)))


def _is_run_worker(pid: int) -> bool:
    """True when `pid` is a live process forked from a multiprocessing forkserver (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing.forkserver" in cmdline


class WarmForkRunLauncher(DefaultRunLauncher):
    """Runs start as forks of a warm forkserver (Dagster and `preload_modules` imported once)."""

    def __init__(self, preload_modules: Sequence[str] = (), inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(inst_data=inst_data)
        self.preload_modules = list(dict.fromkeys([*ALWAYS_PRELOADED, *preload_modules]))
        self._context: Any = None

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"preload_modules": dg.Field([str], is_required=False, default_value=[],
                                            description="libraries the forkserver imports once for every run")}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmForkRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def _forkserver(self) -> Any:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(self.preload_modules)
            self._context = context
        return self._context

    def _runs_here(self, run: dg.DagsterRun) -> bool:
        """The run's location runs under this environment's Python (the same bin folder: a venv's python
        and python3 are both links to one interpreter that other venvs share too)."""
        origin = run.job_code_origin
        return (origin is not None and _bin_dir(origin.executable_path) == _bin_dir(sys.executable)
                and "forkserver" in multiprocessing.get_all_start_methods())  # not on Windows

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if not self._runs_here(run):
            super().launch_run(context)
            return
        worker = self._forkserver().Process(target=execute_run_in_worker, args=(run.run_id, self._instance.get_ref()),
                                            name=f"dagster-run-{run.run_id[:8]}")
        worker.start()
        self._run_ids.add(run.run_id)
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(worker.pid), HOST_TAG: socket.gethostname()})

    def _worker_pid(self, run: dg.DagsterRun) -> int | None:
        pid = run.tags.get(PID_TAG)
        return int(pid) if pid and run.tags.get(HOST_TAG) == socket.gethostname() else None

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        if PID_TAG not in run.tags:
            return super().terminate(run_id)
        self._instance.report_run_canceling(run)
        pid = self._worker_pid(run)
        if pid is None or not _is_run_worker(pid):
            self._instance.report_engine_event(
                f"run worker {run.tags.get(PID_TAG)} on {run.tags.get(HOST_TAG)} is not running on this machine",
                run, cls=self.__class__)
            return False
        os.kill(pid, signal.SIGINT)  # capture_interrupts turns it into Dagster's interruption: the run is canceled
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if PID_TAG not in run.tags:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "launched through the code server")
        pid = self._worker_pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"run worker on {run.tags.get(HOST_TAG)}")
        if _is_run_worker(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone")
