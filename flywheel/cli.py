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
_FORMAT_CHOICES = ("auto", "chatml", "sharegpt", "alpaca")
_EXAMPLES_PER_REASON = 3


def _format_option(value: str) -> str:
    if value not in _FORMAT_CHOICES:
        raise typer.BadParameter(f"expected one of {', '.join(_FORMAT_CHOICES)}")
    return value


def _print_reasons(report: object, kind: str) -> None:
    """Per-reason counts and the first rows of each reason with a snippet (kind: errors | warnings)."""
    from rich.table import Table

    from flywheel.formats import FileReport

    assert isinstance(report, FileReport)
    counts = report.summary()[kind]
    if not counts:
        return
    table = Table(title=kind, title_justify="left")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    table.add_column("first rows")
    for reason, n in counts.items():
        hits = [r for r in report.rows if reason in getattr(r, kind)][:_EXAMPLES_PER_REASON]
        first = "\n".join(f"{r.where}: {r.details.get(reason, '')}\n  [dim]{r.snippet()}[/]" for r in hits)
        table.add_row(reason, str(n), first)
    console.print(table)


def _load_or_fail(path: Path, fmt: str, max_tokens: int) -> object:
    from flywheel.formats import FormatFileError, load_file

    try:
        return load_file(path, fmt=fmt, max_tokens=max_tokens)
    except FormatFileError as exc:
        fail(str(exc))


@app.command()
def validate(
    path: Path = typer.Argument(..., help="a JSONL file or a JSON array"),
    fmt: str = typer.Option("auto", "--format", callback=_format_option, help="auto|chatml|sharegpt|alpaca"),
    max_tokens: int = typer.Option(4096, "--max-tokens", min=1, help="token budget per conversation"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Check every row of a dataset file; exit 0 all valid, 1 some rows invalid, 2 unreadable or mixed."""
    import json

    report = _load_or_fail(path, fmt, max_tokens)
    summary = report.summary()  # type: ignore[attr-defined]
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        style = "green" if not summary["invalid"] else "red"
        console.print(f"[bold]{path}[/]: {summary['format']}, {summary['rows']} rows, "
                      f"[{style}]{summary['valid']} valid, {summary['invalid']} invalid[/]")
        _print_reasons(report, "errors")
        _print_reasons(report, "warnings")
    raise typer.Exit(1 if summary["invalid"] else 0)


@app.command()
def convert(
    path: Path = typer.Argument(..., help="a JSONL file or a JSON array"),
    to: str = typer.Option(..., "--to", help="chatml|sharegpt|alpaca"),
    output: Path = typer.Option(..., "-o", "--output", help="output file: .json for a JSON array, else JSONL"),
    fmt: str = typer.Option("auto", "--format", callback=_format_option, help="input format"),
    multi_turn: str = typer.Option("refuse", "--multi-turn", help="to Alpaca: refuse|history|last|split"),
    max_tokens: int = typer.Option(4096, "--max-tokens", min=1),
) -> None:
    """Convert a dataset file; invalid rows are left out and reported (exit 1), lossy conversions refused (exit 2)."""
    from flywheel.formats import FORMATS, MULTI_TURN_POLICIES, ConversionRefused, convert_report, write_rows

    if to not in FORMATS:
        fail(f"--to must be one of {', '.join(FORMATS)}")
    if multi_turn not in MULTI_TURN_POLICIES:
        fail(f"--multi-turn must be one of {', '.join(MULTI_TURN_POLICIES)}")
    report = _load_or_fail(path, fmt, max_tokens)
    try:
        rows = convert_report(report, to, multi_turn)  # type: ignore[arg-type]
    except ConversionRefused as exc:
        fail(str(exc))
    write_rows(rows, output)
    summary = report.summary()  # type: ignore[attr-defined]
    console.print(f"{path} ({summary['format']}) -> {output} ({to}): wrote {len(rows)} rows "
                  f"from {summary['valid']} valid rows; left out {summary['invalid']} invalid rows")
    _print_reasons(report, "errors")
    raise typer.Exit(1 if summary["invalid"] else 0)


# --- review and labeling ------------------------------------------------------------------------

# --- models -------------------------------------------------------------------------------------

# --- status and demo ----------------------------------------------------------------------------


if __name__ == "__main__":
    app()
