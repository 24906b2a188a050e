"""Run the flywheel's jobs in-process on the Dagster instance ($DAGSTER_HOME), one run at a time.

Used by `flywheel backfill` (a range of partitions, oldest first: the same files as one-by-one runs,
since every partition writes only its own file) and by `flywheel demo`, which find it through the
`flywheel.orchestrator` entry point (`ORCHESTRATOR` below; the library never imports this package).
Runs land in the instance's run storage, so `dagster dev` (`make ui`) shows them, their
materializations and check results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import dagster as dg

from assets.partitions import daily_partitions, weekly_partitions
from assets.resources import FlywheelResource

BACKFILL_JOBS = {"capture": "daily_capture", "labeling": "weekly_labeling", "reviewed": "weekly_reviewed_examples"}
WEEKLY_STEPS = {"labeling", "reviewed"}


def partition_keys(step: str, start: str, end: str) -> list[str]:
    """The partition keys of `step` between two days (inclusive): every day, or every week's Monday."""
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


class InstanceJobRunner:
    """Executes the code location's jobs in this process against a persistent Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance | None = None, resource: FlywheelResource | None = None,
                 quiet: bool = False) -> None:
        self.instance = instance or dg.DagsterInstance.get()
        self.resource = resource
        self.quiet = quiet  # console logs of the runs at WARNING and above only (the UI keeps them all)

    def run(self, job_name: str, partition_key: str | None = None, tags: dict[str, str] | None = None) -> JobOutcome:
        from definitions import defs

        job = defs.resolve_job_def(job_name)
        kwargs: dict[str, Any] = {}
        if self.quiet:
            kwargs["run_config"] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        if self.resource is not None:
            kwargs["resources"] = {"flywheel": self.resource}
        result = job.execute_in_process(
            partition_key=partition_key, instance=self.instance, tags=tags or {}, raise_on_error=False, **kwargs
        )
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


ORCHESTRATOR = DagsterOrchestrator()
