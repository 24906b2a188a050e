"""What every command shares: the consoles, `fail`, and the --project / --home / --database-url options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from flywheel.config import ConfigError, ProjectConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome
from flywheel.project import load_project_or_defaults

# piped output (CI logs, `make demo | tee`) gets a wide table instead of rich's 80-column default
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

PROJECT_OPT = typer.Option(None, "--project", help="folder holding flywheel.yaml (default: $FLYWHEEL_PROJECT or the cwd)")
HOME_OPT = typer.Option(None, "--home", help="data home: a folder or a URL such as s3://bucket/prefix (default: $FLYWHEEL_HOME or ./.flywheel)")
DB_OPT = typer.Option(None, "--database-url", help="decision store and registry (default: $FLYWHEEL_DATABASE_URL or SQLite in the home)")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` as an error (plain text: brackets in it are not rich markup) and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def home_and_db(home: str | None = None, database_url: str | None = None) -> tuple[FlywheelHome, str]:
    """The data home (--home, else $FLYWHEEL_HOME, else ./.flywheel) and the database URL."""
    try:
        fw_home = FlywheelHome.from_env(home)
        return fw_home, fw_home.database_url(database_url)
    except InputError as exc:  # a URL whose filesystem is not installed; object storage without a database
        fail(str(exc))


def project_or_fail(project: Path | None = None) -> ProjectConfig:
    """The project (--project, else $FLYWHEEL_PROJECT, else the cwd; defaults without a flywheel.yaml)."""
    try:
        return load_project_or_defaults(project)
    except ConfigError as exc:
        fail(str(exc))
