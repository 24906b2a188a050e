"""Run the flywheel's jobs in-process on the Dagster instance ($DAGSTER_HOME), one run at a time.

Used by `flywheel backfill` (a range of partitions, oldest first: the same files as one-by-one runs,
since every partition writes only its own file) and by `flywheel demo`, which find it through the
`flywheel.orchestrator` entry point (`ORCHESTRATOR` below; the library never imports this package).
Each run is created with the remote origin of the `flywheel` code location (the location that
workspace.yaml and `dg dev` load from the module `definitions`), exactly as a run launched from the UI,
so the webserver lists it under the location: the Overview timeline, the job's runs and partitions, the
assets' materializations, and it can be re-executed from there. Only the execution stays in this process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.build_resources import wrap_resources_for_execution
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.remote_origin import (
    CodeLocationOrigin,
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from assets.partitions import daily_partitions, quarterly_partitions, weekly_partitions
from assets.resources import FlywheelResource
from flywheel.core.errors import InputError
from flywheel.core.quarters import quarters_between

CODE_LOCATION = "flywheel"  # workspace.yaml's location_name, pyproject's [tool.dg.project] code_location_name
DEFINITIONS_MODULE = "definitions"
BACKFILL_JOBS = {"capture": "daily_capture", "labeling": "weekly_labeling", "reviewed": "weekly_reviewed_examples",
                 "retrain": "retrain"}
WEEKLY_STEPS = {"labeling", "reviewed"}


def partition_keys(step: str, start: str, end: str) -> list[str]:
    """The partition keys of `step` between two days (inclusive): every day, every week's Monday, or every
    quarter's first day (`retrain`, which also takes quarters as 2026-Q3)."""
    if step == "retrain":
        try:
            keys = quarters_between(start, end)
        except InputError as exc:
            raise ValueError(f"--from/--to: {exc}") from None
        partitions = quarterly_partitions
        first_key, last_key = partitions.get_first_partition_key(), partitions.get_last_partition_key()
        if first_key is None or last_key is None or keys[0] < first_key or keys[-1] > last_key:
            raise ValueError(f"{keys[0]}..{keys[-1]} is outside the retrain quarters ({first_key}..{last_key})")
        return keys
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise ValueError(f"--from/--to: expected YYYY-MM-DD ({exc})") from None
    if last < first:
        raise ValueError(f"--to {end} is before --from {start}")
    if step in WEEKLY_STEPS:
        first = first - timedelta(days=first.weekday())
        keys = [(first + timedelta(weeks=i)).isoformat() for i in range((last - first).days // 7 + 1)]
        partitions = weekly_partitions
    else:
        keys = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        partitions = daily_partitions
    first_key, last_key = partitions.get_first_partition_key(), partitions.get_last_partition_key()
    if first_key is None or last_key is None or keys[0] < first_key or keys[-1] > last_key:
        raise ValueError(f"{keys[0]}..{keys[-1]} is outside the {step} partitions ({first_key}..{last_key}: "
                         "complete days or weeks only)")
    return keys


@dataclass
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    blocking: bool
    description: str | None
    metadata: dict[str, Any]


@dataclass
class JobOutcome:
    """What one run did: success, its id, failed steps, asset checks and materialization metadata."""

    job: str
    run_id: str
    success: bool
    partition_key: str | None = None
    failed_steps: list[str] = field(default_factory=list)
    skipped_steps: list[str] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> metadata (plain values)
    error: str | None = None

    def failed_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def code_location_origin() -> CodeLocationOrigin:
    """The `flywheel` code location as the webserver loads it from workspace.yaml (or `dg dev` from
    pyproject's [tool.dg.project]): the module `definitions`, imported from the folder it lives in."""
    import definitions

    return ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(module_name=DEFINITIONS_MODULE, working_directory=str(Path(definitions.__file__).parent)),
        location_name=CODE_LOCATION,
    )


def remote_job_origin(repository_name: str, job_name: str) -> RemoteJobOrigin:
    """The origin a run of `job_name` launched from the UI carries: location, repository, job."""
    return RemoteJobOrigin(RemoteRepositoryOrigin(code_location_origin(), repository_name), job_name)


class InstanceJobRunner:
    """Executes the code location's jobs in this process against a persistent Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance | None = None, resource: FlywheelResource | None = None,
                 quiet: bool = False) -> None:
        self.instance = instance or dg.DagsterInstance.get()
        self.resource = resource
        self.quiet = quiet  # console logs of the runs at WARNING and above only (the UI keeps them all)

    def run(self, job_name: str, partition_key: str | None = None, tags: dict[str, str] | None = None) -> JobOutcome:
        """Create the run under the code location (as the UI would) and execute it here, in-process."""
        from definitions import defs

        repository = defs.get_repository_def()
        job = repository.get_job(job_name)
        # what `execute_in_process` does (resources laid over the job's, steps in this process), with the run
        # created under the code location's remote origin instead of none
        resources = wrap_resources_for_execution({"flywheel": self.resource} if self.resource is not None else {})
        local_job = job.as_ephemeral_job(resource_defs=resources, input_values={})
        run_config: dict[str, Any] = {}
        if partition_key and local_job.partitioned_config:
            run_config = dict(local_job.partitioned_config.get_run_config_for_partition_key(partition_key))
        if self.quiet:
            run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
        run_tags = merge_run_tags(job_def=job, partition_key=partition_key, tags=tags, asset_selection=None,
                                  instance=self.instance, run_config=run_config)
        in_memory = InMemoryJob(local_job)
        plan = create_execution_plan(
            in_memory, run_config=run_config,
            instance_ref=self.instance.get_ref() if self.instance.is_persistent else None,
        )
        dagster_run = self.instance.create_run_for_job(
            job_def=local_job, execution_plan=plan, run_config=run_config, tags=run_tags,
            remote_job_origin=remote_job_origin(repository.name, job_name),
        )
        result = execute_run(in_memory, dagster_run, self.instance)
        outcome = JobOutcome(job_name, result.run_id, result.success, partition_key,
                             failed_steps=result.get_failed_step_keys() and sorted(result.get_failed_step_keys()) or [],
                             skipped_steps=sorted(e.step_key for e in result.get_step_skipped_events() if e.step_key))
        for ev in result.get_asset_check_evaluations():
            outcome.checks.append(CheckOutcome(
                ev.asset_key.to_user_string(), ev.check_name, ev.passed, ev.blocking, ev.description,
                {k: _plain(v) for k, v in ev.metadata.items()},
            ))
        for ev in result.get_asset_materialization_events():
            mat = ev.event_specific_data.materialization  # type: ignore[union-attr]
            outcome.materialized[mat.asset_key.to_user_string()] = {k: _plain(v) for k, v in mat.metadata.items()}
        for ev in result.get_step_failure_events():
            error = getattr(ev.event_specific_data, "error", None)
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                outcome.error = f"{ev.step_key}: {error.message.strip()}"
                break
        return outcome


class DagsterOrchestrator:
    """What the `flywheel` CLI needs from the code location: runners and backfill plans."""

    backfill_steps = tuple(BACKFILL_JOBS)

    def job_runner(self, quiet: bool = False) -> InstanceJobRunner:
        return InstanceJobRunner(quiet=quiet)

    def backfill_plan(self, step: str, start: str, end: str) -> tuple[str, list[str]]:
        if step not in BACKFILL_JOBS:
            raise ValueError(f"unknown step {step!r}; expected one of {sorted(BACKFILL_JOBS)}")
        return BACKFILL_JOBS[step], partition_keys(step, start, end)

    def record_champion_change(self, version: str, action: str, by: str, reason: str) -> None:
        from jobs.champion_events import record_champion_change

        record_champion_change(version, action, by, reason)


ORCHESTRATOR = DagsterOrchestrator()
