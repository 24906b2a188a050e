"""`flywheel validate` and `flywheel convert`: dataset files in ChatML, ShareGPT or Alpaca."""

from __future__ import annotations

from pathlib import Path

import typer

from flywheel.cli.app import app
from flywheel.cli.output import console, fail

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


def _load_or_fail(path: Path, fmt: str, max_tokens: int, token_counter: object = None) -> object:
    from flywheel.formats import FormatFileError, load_file

    try:
        return load_file(path, fmt=fmt, max_tokens=max_tokens, token_counter=token_counter)  # type: ignore[arg-type]
    except FormatFileError as exc:
        fail(str(exc))


@app.command()
def validate(
    path: Path = typer.Argument(..., help="a JSONL file or a JSON array"),
    fmt: str = typer.Option("auto", "--format", callback=_format_option, help="auto|chatml|sharegpt|alpaca"),
    max_tokens: int = typer.Option(4096, "--max-tokens", min=1, help="token budget per conversation"),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="`tiny` or a tokenizer folder / hub id: exact token counts, and every valid row "
        "rendered with its chat template and checked to round-trip (default: approximate counts)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Check every row of a dataset file; exit 0 all valid, 1 some rows invalid (or failing the chat
    template round trip), 2 unreadable or mixed."""
    import json

    from flywheel.formats import (
        FormatFileError,
        MixedFormatError,
        check_template_file,
        load_file,
        load_tokenizer,
        tokenizer_counter,
    )

    tok = None
    if tokenizer is not None:
        try:
            tok = load_tokenizer(tokenizer)
        except (OSError, ValueError) as exc:
            fail(f"--tokenizer {tokenizer}: cannot load: {exc}")
    counter = tokenizer_counter(tok) if tok is not None else None
    if as_json:  # machine readers get an object on stdout for unreadable and mixed files too
        try:
            report = load_file(path, fmt=fmt, max_tokens=max_tokens, token_counter=counter)
        except FormatFileError as exc:
            mixed = exc.first_rows if isinstance(exc, MixedFormatError) else None
            typer.echo(json.dumps({"path": str(path), "format": None, "error": str(exc), "mixed_formats": mixed},
                                  ensure_ascii=False))
            raise typer.Exit(2) from None
    else:
        report = _load_or_fail(path, fmt, max_tokens, counter)
    summary = report.summary()  # type: ignore[attr-defined]
    template = check_template_file(tok, report) if tok is not None else None  # type: ignore[arg-type]
    if template is not None:
        summary["template"] = template
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        style = "green" if not summary["invalid"] else "red"
        console.print(f"[bold]{path}[/]: {summary['format']}, {summary['rows']} rows, "
                      f"[{style}]{summary['valid']} valid, {summary['invalid']} invalid[/]")
        _print_reasons(report, "errors")
        _print_reasons(report, "warnings")
        if template is not None:
            style = "green" if not template["failed"] else "red"
            console.print(f"chat template of {tokenizer}: [{style}]{template['checked'] - template['failed']} of "
                          f"{template['checked']} valid rows round-trip[/]")
            for problem, n in template["problems"].items():
                console.print(f"  {n} rows: {problem} (first at {template['first'][problem]})")
    raise typer.Exit(1 if summary["invalid"] or (template is not None and template["failed"]) else 0)


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
