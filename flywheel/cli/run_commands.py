"""`flywheel demo` and `flywheel backfill`: run the code location's jobs on the Dagster instance.

The library never imports the code location: the jobs are reached through the orchestrator the
distribution registers under the `flywheel.orchestrator` entry point (`flywheel.ops.runs`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from flywheel.cli.app import app
from flywheel.cli.output import console, fail
from flywheel.core.errors import StateError
from flywheel.core.quarters import quarter_label
from flywheel.core.storage import DATABASE_URL_ENV, HOME_ENV, FlywheelHome
from flywheel.demo.cycles import DemoError
from flywheel.demo.project import DEFAULT_TRAINING_SEED, demo_project_dir, reset_home
from flywheel.ops.runs import Orchestrator, load_orchestrator
from flywheel.project import PROJECT_ENV


def _orchestrator() -> Orchestrator:
    try:
        return load_orchestrator()
    except StateError as exc:
        fail(str(exc), code=1)


def _ensure_dagster_home() -> Path:
    """$DAGSTER_HOME, defaulting (like `make ui`) to ./.dagster: created with SQLite storage and no telemetry."""
    os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster").resolve()))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return dagster_home


@contextmanager
def _output_to(log_path: Path) -> Iterator[Console]:
    """Send this process's stdout/stderr (file descriptors 1 and 2, so subprocesses too) to `log_path`;
    yields a Console that still writes to the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = Console(file=os.fdopen(os.dup(saved_out), "w"), force_terminal=console.is_terminal, log_path=False)
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.file.flush()


@app.command()
def demo(
    small: bool = typer.Option(False, help="a reduced scenario (fewer rows, three short cycles): a few minutes"),
    keep: bool = typer.Option(False, help="keep the previous demo state instead of starting clean"),
    seed: int = typer.Option(DEFAULT_TRAINING_SEED, "--seed", help="the training seed (the story must not depend on it)"),
) -> None:
    """Run the deterministic demo: the champion serves simulated users -> capture -> labeling -> simulated
    review -> source admission -> dataset -> retrain -> evaluation -> gate (promoted | held | blocked),
    over several cycles, through the real Dagster jobs on the instance in $DAGSTER_HOME. Writes
    $FLYWHEEL_HOME/reports/demo.md."""
    from rich.table import Table

    from flywheel.demo.report import interval_text, verdict_text
    from flywheel.demo.run import run_demo
    from flywheel.demo.scenario import FULL, SMALL

    _ensure_dagster_home()
    fw_home = FlywheelHome.from_env()
    project_dir = demo_project_dir(fw_home)
    # the jobs read the project and home from the environment, exactly as `make ui` will
    os.environ[HOME_ENV] = str(fw_home.root)
    os.environ[PROJECT_ENV] = str(project_dir)
    if not fw_home.remote:
        os.environ.pop(DATABASE_URL_ENV, None)  # the demo keeps its state in the home's SQLite file
    runner = _orchestrator().job_runner(quiet=True)
    try:
        if not keep:
            reset_home(fw_home)
    except RuntimeError as exc:
        fail(str(exc), code=1)
    log_path = fw_home.reports() / "demo.log"
    console.print(f"flywheel demo: Dagster instance {os.environ['DAGSTER_HOME']}, data {fw_home.root}, "
                  f"run logs in {log_path}")
    try:
        # the runs' and the training subprocesses' output goes to the log; the progress to the terminal
        with _output_to(log_path) as terminal, terminal.status("starting", spinner="dots") as spinner:
            def say(msg: str) -> None:
                terminal.log(msg)
                spinner.update(msg)

            result = run_demo(runner, fw_home, size=SMALL if small else FULL, keep=True, say=say, training_seed=seed)
    except DemoError as exc:
        fail(f"{exc} (see {log_path})", code=1)
    table = Table(title=f"flywheel demo: {len(result.cycles)} cycles in {result.seconds:.0f} s, training seed {seed} "
                        "(chrF on the fixed eval set; full reasons in the report)")
    for col in ("cycle", "trigger", "live neg. rate", "examples by source", "overall", "clean", "messy", "edge",
                "Δ [95% interval]", "verdict"):
        table.add_column(col, overflow="fold")
    short = {"human": "human", "human_fixed": "fixed", "real": "real", "synthetic": "synth", "distilled": "distilled"}
    styles = {"promoted": "green", "held": "yellow", "blocked": "red"}
    for c in result.cycles:
        sources = " ".join(f"{short.get(k, k)} {v}" for k, v in sorted(c.by_source.items()))
        if c.held_out:
            sources += f" (held out: {', '.join(c.held_out)})"
        table.add_row(f"{c.number} {c.name}", f"{c.trigger} {quarter_label(c.quarter)}" if c.quarter else c.trigger, f"{c.served.negative_rate:.0%}" if c.served else "-", sources,
                      *(f"{c.scores.get(k, float('nan')):.3f}" for k in ("overall", "clean", "messy", "edge_case")),
                      interval_text(c), verdict_text(c, 90), style=styles.get(c.outcome, ""))
    console.print(table)
    console.print(f"report: {result.report}\nproject: {result.project_dir}\n"
                  f"next: `make ui` (runs, lineage, checks) and `FLYWHEEL_PROJECT={result.project_dir} flywheel status`")


@app.command()
def backfill(
    step: str = typer.Argument(..., help="capture (daily partitions), labeling / reviewed (weekly, Monday keys) "
                               "or retrain (quarters)"),
    start: str = typer.Option(..., "--from", help="first day YYYY-MM-DD (retrain: also a quarter, 2026-Q1)"),
    end: str = typer.Option(..., "--to", help="last day YYYY-MM-DD, inclusive (retrain: also a quarter, 2026-Q2)"),
) -> None:
    """Run a job's partitions one by one through the Dagster instance ($DAGSTER_HOME, default ./.dagster),
    oldest first. The same as `dagster job backfill -j daily_capture --partitions ...` or a UI backfill.

    A retrain backfill rebuilds each quarter's dataset from what was captured and reviewed before its end,
    trains and scores it on the frozen eval set, and leaves the champion alone unless the newest quarter
    passes the gate: it measures a change (a curation rule, the recipe) across past quarters."""
    orchestrator = _orchestrator()
    try:
        job, keys = orchestrator.backfill_plan(step, start, end)
    except ValueError as exc:
        fail(str(exc))
    _ensure_dagster_home()
    runner = orchestrator.job_runner()
    failed = 0
    for key in keys:
        outcome = runner.run(job, partition_key=key, tags={"flywheel/trigger": "backfill"})
        failed += not outcome.success
        mark = "[green]ok[/]" if outcome.success else "[red]failed[/]"
        verdict = (outcome.materialized.get("candidate_evaluation") or {}).get("outcome")
        console.print(f"{job} {key}: {mark} run {outcome.run_id}" + (f" ({verdict})" if verdict else ""))
    if failed:
        fail(f"{failed} of {len(keys)} partitions failed", code=1)
