"""`flywheel erase`: remove one user's data from every store (GDPR art. 17)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

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
from flywheel.core.errors import FlywheelError
from flywheel.ops.erasure import ERASURE_LOG, erase_user


@app.command()
def erase(
    user: str = typer.Option(..., "--user", help="the user's raw id, as the serving app logged it"),
    project: Path | None = PROJECT_OPT,
    home: str | None = HOME_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Erase one user (GDPR art. 17) from landing, warehouse, quarantine, labeling, the review store, signals
    and every dataset version; list the model versions trained on their data, to retrain. Safe to re-run."""
    config = project_or_fail(project).capture
    fw_home, db_url = home_and_db(home, database_url)
    try:
        report = erase_user(fw_home, db_url, config, user)
    except FlywheelError as exc:
        fail(str(exc))
    log = fw_home.reports() / ERASURE_LOG
    if report.total == 0:
        console.print(f"nothing to erase: 0 rows of this user in any store (already erased, or never captured); "
                      f"recorded in {log}")
    else:
        table = Table(title=f"erasure {report.erasure_id}: {report.total} rows in {len(report.files)} files "
                            f"({report.seconds:.1f} s)")
        table.add_column("store")
        table.add_column("rows removed", justify="right")
        for store, rows in sorted(report.rows.items()):
            table.add_row(store, f"{rows} row" + ("s" if rows != 1 else ""))
        console.print(table)
        if report.dataset_versions:
            console.print(f"dataset versions amended in place: {', '.join(report.dataset_versions)}")
        console.print(f"recorded in {log}")
    if report.models:
        console.print("[bold yellow]retrain:[/] model versions trained on this user's data: " + ", ".join(
            f"{m['version']} ({m['status']}, dataset {m['dataset_version']})" for m in report.models))
    if report.pending_files:
        err_console.print(f"[yellow]warning:[/] {len(report.pending_files)} landing file(s) still being written hold "
                          "this user's records; run the erasure again once they are published")
