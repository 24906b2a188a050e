"""`flywheel ...`: the command line (init, validate, convert, review, labeling, models, status, demo).

Each domain's commands live in their own section below and call one library function each.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from flywheel.config import ConfigError, load_project
from flywheel.project import init_project

app = typer.Typer(help="flywheel: a data flywheel for LLM fine-tuning.", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
)
labeling_app = typer.Typer(help="Review batches by file, and close batches.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list, promote, roll back.", no_args_is_help=True)
app.add_typer(labeling_app, name="labeling")
app.add_typer(models_app, name="models")

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


# --- project -------------------------------------------------------------------------------------
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
    """Validate a project file and print the effective configuration."""
    try:
        cfg = load_project(path)
    except ConfigError as exc:
        fail(str(exc))
    console.print_json(cfg.model_dump_json())


# --- formats: validate / convert ----------------------------------------------------------------

# --- review and labeling ------------------------------------------------------------------------

# --- models -------------------------------------------------------------------------------------

# --- status and demo ----------------------------------------------------------------------------


if __name__ == "__main__":
    app()
