"""`flywheel init`, `check-config` and `status`: the project and where it stands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from flywheel.cli.app import app
from flywheel.cli.output import (
    DB_OPT,
    HOME_OPT,
    PROJECT_OPT,
    console,
    err_console,
    fail,
    home_and_db,
    project_or_fail,
)
from flywheel.config import ConfigError, load_project
from flywheel.project import init_project


@app.command()
def init(directory: Path = typer.Argument(..., help="folder for the new project"), force: bool = False) -> None:
    """Write a commented starter project: flywheel.yaml, rubric.md and an empty eval set."""
    try:
        written = init_project(directory, force=force)
    except FileExistsError as exc:
        fail(str(exc))
    for p in written:
        console.print(f"wrote {p}")
    console.print("Next: write the rubric (rubric.md) before collecting a single example.")


@app.command("check-config")
def check_config(path: Path = typer.Argument(Path("."), help="flywheel.yaml or its folder")) -> None:
    """Validate a project file, print the effective configuration, then every problem of the project
    (rubric, eval set, source files); exit 1 when the project is unusable, 2 when the file is invalid."""
    from flywheel.ops.project_checks import check_project

    try:
        cfg = load_project(path)
    except ConfigError as exc:
        fail(str(exc))
    console.print_json(cfg.model_dump_json())
    report = check_project(cfg)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    if report.problems:
        err_console.print(f"[bold red]{len(report.problems)} problem(s)[/] make this project unusable:")
        for problem in report.problems:
            err_console.print(f"  - {escape(problem)}")
        raise typer.Exit(1)
    console.print("[green]project ok[/]: rubric written, eval set large enough, every source file present")


@app.command()
def status(project: Path | None = PROJECT_OPT, home: str | None = HOME_OPT, database_url: str | None = DB_OPT) -> None:
    """One screen: the doctor's findings (stale capture, open review batches of every kind, automation off
    by default, champion age, last gate outcome), capture, review batches, dataset, champion, score
    history, next scheduled step."""
    from flywheel.ops.status import collect_status, render_status

    cfg = project_or_fail(project)
    fw_home, url = home_and_db(home, database_url)
    console.print(render_status(collect_status(cfg, fw_home, url)))
