"""`flywheel review` and `flywheel labeling ...`: review batches in the browser or by file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from flywheel.cli.app import app, labeling_app
from flywheel.cli.output import PROJECT_OPT, console, err_console, fail, home_and_db, project_or_fail
from flywheel.labeling.store import ReviewError, ReviewStore
from flywheel.project import rubric_text


def _review_store() -> ReviewStore:
    """The decision store of FLYWHEEL_HOME (or FLYWHEEL_DATABASE_URL)."""
    return ReviewStore(home_and_db()[1])


@app.command()
def review(
    batch: str = typer.Option(..., "--batch", help="batch id, e.g. the week 2026-11-16"),
    reviewer: str | None = typer.Option(None, "--reviewer", help="your name (else the page asks once)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (keep it local)"),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="0: any free port"),
    project: Path | None = PROJECT_OPT,
) -> None:
    """Serve the review page of a batch: pass / fix / reject each item (Ctrl+C to stop)."""
    from flywheel.labeling.server import ReviewServer  # Starlette + uvicorn: only for this command

    limits = project_or_fail(project).labeling
    store = _review_store()
    try:
        server = ReviewServer(store, batch, host=host, port=port, reviewer=reviewer, limits=limits)
    except ReviewError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[yellow]warning:[/] listening on {host}; anyone with the link can review")
    progress = store.progress(batch)
    console.print(f"batch [bold]{batch}[/]: {progress.decided} of {progress.items} items decided")
    server.run(on_ready=lambda url: console.print(f"open [bold]{url}[/]  (Ctrl+C to stop)", soft_wrap=True))


@labeling_app.command("export")
def labeling_export(
    batch: str = typer.Option(..., "--batch", help="batch id"),
    output: Path | None = typer.Option(None, "-o", "--output", help="JSONL file (default: review-<batch>.jsonl)"),
) -> None:
    """Write a batch as JSONL; fill in verdict (pass | fix | reject), text (fix) and reason (reject) per line."""
    from flywheel.labeling.decisions import export_batch

    target = output or Path(f"review-{batch}.jsonl")
    try:
        export_batch(_review_store(), batch, target)
    except ReviewError as exc:
        fail(str(exc))
    console.print(f"wrote {target}; import it with `flywheel labeling import {target} --reviewer NAME`")


@labeling_app.command("import")
def labeling_import(
    path: Path = typer.Argument(..., help="decisions JSONL (an edited export)"),
    reviewer: str = typer.Option(..., "--reviewer", help="who made these decisions"),
    batch: str | None = typer.Option(None, "--batch", help="only accept lines of this batch"),
    project: Path | None = PROJECT_OPT,
) -> None:
    """Apply a decisions file: every line is validated first; one bad line applies nothing (exit 1)."""
    from flywheel.labeling.decisions import DecisionFileError, import_decisions

    limits = project_or_fail(project).labeling
    try:
        report = import_decisions(_review_store(), path, reviewer, batch_id=batch, limits=limits)
    except DecisionFileError as exc:
        fail(str(exc), code=1)
    console.print(escape(f"{path}: applied {report.applied} decisions by {reviewer} ({report.skipped_undecided} "
                         f"lines without a verdict left undecided) to {', '.join(report.batches) or '-'}"))


@labeling_app.command("close")
def labeling_close(
    batch: str = typer.Option(..., "--batch", help="batch id"),
    by: str = typer.Option("cli", "--by", help="who closes it"),
) -> None:
    """Close a batch by hand: it counts as complete, undecided items stay out of the examples."""

    store = _review_store()
    try:
        store.close_batch(batch, closed_by=by)
    except ReviewError as exc:
        fail(str(exc))
    p = store.progress(batch)
    console.print(f"closed batch {batch}: {p.decided} of {p.items} items decided")


@labeling_app.command("list")
def labeling_list() -> None:
    """Every batch in the decision store with its progress."""
    from rich.table import Table

    store = _review_store()
    table = Table("batch", "kind", "items", "decided", "decisions", "state")
    for bid in store.batch_ids():
        p = store.progress(bid)
        table.add_row(bid, store.batch(bid).kind, str(p.items), str(p.decided), str(p.decisions), p.state)
    console.print(table)


@labeling_app.command("sample")
def labeling_sample(
    source: str = typer.Option(..., "--source", help="an example file (Parquet, JSONL, JSON) or a warehouse table name"),
    n: int = typer.Option(150, "-n", min=1, help="rows to sample (100-200 is a good review size)"),
    batch: str | None = typer.Option(None, "--batch", help="batch id (default: sample-<source>-<seed>)"),
    seed: int = typer.Option(0, "--seed"),
    project: Path | None = typer.Option(None, "--project", help="project folder for the rubric (default: $FLYWHEEL_PROJECT or .)"),
) -> None:
    """Send a seeded random sample of any example source for review (e.g. a synthetic examples file)."""
    from flywheel.labeling.batches import create_sample_batch, load_example_source

    rubric = rubric_text(project_or_fail(project))
    batch_id = batch or f"sample-{Path(source).stem}-{seed}"
    try:
        rows = load_example_source(home_and_db()[0], source)
        items = create_sample_batch(_review_store(), batch_id, rows, n=n, seed=seed, rubric=rubric, source=source)
    except (FileNotFoundError, ReviewError) as exc:
        fail(str(exc))
    console.print(f"batch [bold]{batch_id}[/]: {len(items)} of {len(rows)} valid rows sampled from {source}; "
                  f"review with `flywheel review --batch {batch_id}`")
