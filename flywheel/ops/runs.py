"""How the library reaches the orchestrator that runs its jobs, without importing it.

`flywheel demo` and `flywheel backfill` run the code location's jobs, and `flywheel models promote` /
`rollback` record their registry change on the champion asset. The library never imports the
code location (`jobs`, `assets`, `definitions`): the distribution registers its runner under the
entry-point group `flywheel.orchestrator` (see pyproject.toml), and `load_orchestrator()` finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol

from flywheel.core.errors import StateError

ENTRY_POINT_GROUP = "flywheel.orchestrator"


class JobOutcomeLike(Protocol):
    """What one run did: success, its id, the first error, asset checks and materialization metadata."""

    job: str
    run_id: str
    success: bool
    error: str | None
    checks: list[Any]
    materialized: dict[str, dict[str, Any]]

    def failed_checks(self) -> list[Any]: ...


class JobRunner(Protocol):
    """Runs one of the code location's jobs (optionally one partition) and reports what happened."""

    def run(self, job_name: str, partition_key: str | None = None, tags: dict[str, str] | None = None) -> JobOutcomeLike: ...


class Orchestrator(Protocol):
    """The entry point's object: makes runners and plans backfills over the code location's partitions."""

    backfill_steps: Sequence[str]

    def job_runner(self, quiet: bool = False) -> JobRunner: ...

    def backfill_plan(self, step: str, start: str, end: str) -> tuple[str, list[str]]:
        """(job name, partition keys) of `step` between two days; ValueError for a bad range."""
        ...

    def record_champion_change(self, version: str, action: str, by: str, reason: str) -> None:
        """Record a registry change made outside a run (`action`: promoted | forced | rollback) on the
        orchestrator's champion asset, so its catalog shows the real champion; StateError when there
        is nowhere to record it."""
        ...


def load_orchestrator(name: str = "dagster") -> Orchestrator:
    """The orchestrator registered under `name` in the `flywheel.orchestrator` entry-point group."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise StateError(f"no orchestrator {name!r} registered in the {ENTRY_POINT_GROUP!r} entry points; "
                         "install flywheel with its code location (`pip install -e .`)")
    return found[0].load()
