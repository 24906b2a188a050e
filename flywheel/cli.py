"""`flywheel ...`: the command line (init, validate, convert, review, labeling, models, status, demo).

Each domain's commands live in their own section below and call one library function each.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from flywheel.config import ConfigError, load_project
from flywheel.core.storage import FlywheelHome
from flywheel.project import init_project

app = typer.Typer(help="flywheel: a data flywheel for LLM fine-tuning.", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
)
labeling_app = typer.Typer(help="Review batches by file, and close batches.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list, promote, roll back.", no_args_is_help=True)
app.add_typer(labeling_app, name="labeling")
app.add_typer(models_app, name="models")

# piped output (CI logs, `make demo | tee`) gets a wide table instead of rich's 80-column default
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


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


# --- review and labeling ------------------------------------------------------------------------
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from flywheel.labeling.store import ReviewStore


def _review_store() -> ReviewStore:
    """The decision store of FLYWHEEL_HOME (or FLYWHEEL_DATABASE_URL)."""
    from flywheel.labeling.store import ReviewStore

    return ReviewStore(FlywheelHome.from_env().database_url())


@app.command()
def review(
    batch: str = typer.Option(..., "--batch", help="batch id, e.g. the week 2026-11-16"),
    reviewer: str | None = typer.Option(None, "--reviewer", help="your name (else the page asks once)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (keep it local)"),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="0: any free port"),
) -> None:
    """Serve the review page of a batch: pass / fix / reject each item (Ctrl+C to stop)."""
    from flywheel.labeling.server import ReviewServer
    from flywheel.labeling.store import ReviewError

    store = _review_store()
    try:
        server = ReviewServer(store, batch, host=host, port=port, reviewer=reviewer)
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
    from flywheel.labeling.batches import export_batch
    from flywheel.labeling.store import ReviewError

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
) -> None:
    """Apply a decisions file: every line is validated first; one bad line applies nothing (exit 1)."""
    from flywheel.labeling.batches import DecisionFileError, import_decisions

    try:
        report = import_decisions(_review_store(), path, reviewer, batch_id=batch)
    except DecisionFileError as exc:
        fail(str(exc), code=1)
    console.print(f"{path}: applied {report.applied} decisions by {reviewer} "
                  f"({report.skipped_undecided} lines without a verdict left undecided) to {', '.join(report.batches) or '-'}")


@labeling_app.command("close")
def labeling_close(
    batch: str = typer.Option(..., "--batch", help="batch id"),
    by: str = typer.Option("cli", "--by", help="who closes it"),
) -> None:
    """Close a batch by hand: it counts as complete, undecided items stay out of the examples."""
    from flywheel.labeling.store import ReviewError

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
    import os

    from flywheel.labeling.batches import create_sample_batch, load_example_source
    from flywheel.labeling.store import ReviewError
    from flywheel.project import rubric_text

    project_dir = project or Path(os.environ.get("FLYWHEEL_PROJECT") or ".")
    rubric = rubric_text(load_project(project_dir)) if (project_dir / "flywheel.yaml").exists() else ""
    batch_id = batch or f"sample-{Path(source).stem}-{seed}"
    try:
        rows = load_example_source(FlywheelHome.from_env(), source)
        items = create_sample_batch(_review_store(), batch_id, rows, n=n, seed=seed, rubric=rubric, source=source)
    except (FileNotFoundError, ReviewError, ConfigError) as exc:
        fail(str(exc))
    console.print(f"batch [bold]{batch_id}[/]: {len(items)} of {len(rows)} valid rows sampled from {source}; "
                  f"review with `flywheel review --batch {batch_id}`")



# --- models -------------------------------------------------------------------------------------


_HOME_OPT = typer.Option(None, "--home", help="data home (default: $FLYWHEEL_HOME or ./.flywheel)")
_DB_OPT = typer.Option(None, "--database-url", help="registry database (default: $FLYWHEEL_DATABASE_URL or SQLite in the home)")


def _score_cell(overall: dict[str, float], metric: str | None = None) -> str:
    if not overall:
        return "-"
    keys = [metric] if metric and metric in overall else sorted(overall)
    return ", ".join(f"{k} {overall[k]:.3f}" for k in keys)


@models_app.command("list")
def models_list(home: Path | None = _HOME_OPT, database_url: str | None = _DB_OPT) -> None:
    """Every model version in the registry with its status, scores and who promoted it."""
    from rich.table import Table

    from flywheel.models import registry

    _, db = _home_and_db(home, database_url)
    records = registry.list_models(db)
    if not records:
        console.print("No model versions in the registry yet.")
        return
    table = Table(title="model registry")
    for col in ("version", "status", "dataset", "eval set", "scores (fixed set)", "promoted by", "promoted at", "reason"):
        table.add_column(col, overflow="fold")
    colors = {"champion": "bold green", "candidate": "cyan", "rejected": "red", "retired": "dim"}
    for r in records:
        table.add_row(r.version, f"[{colors.get(r.status, '')}]{r.status}[/]", r.dataset_version or "-",
                      f"{r.eval_set_hash or '-'} (v{r.eval_set_version})" if r.eval_set_hash else "-",
                      _score_cell(r.scores.get("overall", {})), r.promoted_by or "-",
                      r.promoted_at.strftime("%Y-%m-%d %H:%M") if r.promoted_at else "-", r.reason or "")
    console.print(table)


def _home_and_db(home: Path | None, database_url: str | None) -> tuple[FlywheelHome, str]:
    """The data home (--home or $FLYWHEEL_HOME) and the registry URL (--database-url or the home's)."""
    h = FlywheelHome(home) if home else FlywheelHome.from_env()
    return h, database_url or h.database_url()


def _print_serving(info: dict) -> None:
    console.print(f"serve with: {info['vllm_command']}")
    for warning in info.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")


@models_app.command("promote")
def models_promote(
    version: str = typer.Argument(..., help="the model version to make champion"),
    reason: str = typer.Option(..., "--reason", help="why (recorded in the registry log)"),
    force: bool = typer.Option(False, "--force", help="override a failed gate (a logged manual override)"),
    by: str | None = typer.Option(None, "--by", help="who promotes (default: $USER)"),
    home: Path | None = _HOME_OPT,
    database_url: str | None = _DB_OPT,
) -> None:
    """Make VERSION the champion; refused without --force when it failed the gate."""
    from flywheel.models import registry

    h, db = _home_and_db(home, database_url)
    try:
        rec = registry.promote(db, version, by=by, reason=reason, force=force)
    except registry.RegistryError as exc:
        fail(str(exc))
    console.print(f"[bold green]{rec.version} is the champion[/] (promoted by {rec.promoted_by}: {rec.reason})")
    _print_serving(registry.write_serving_export(h, rec))


@models_app.command("rollback")
def models_rollback(
    reason: str = typer.Option("manual rollback", "--reason", help="why (recorded in the registry log)"),
    by: str | None = typer.Option(None, "--by", help="who rolls back (default: $USER)"),
    home: Path | None = _HOME_OPT,
    database_url: str | None = _DB_OPT,
) -> None:
    """Champion -> the previous champion; the current one is retired."""
    from flywheel.models import registry

    h, db = _home_and_db(home, database_url)
    try:
        retired, champion = registry.rollback(db, by=by, reason=reason)
    except registry.RegistryError as exc:
        fail(str(exc))
    console.print(f"retired {retired.version}; [bold green]{champion.version} is the champion again[/]")
    _print_serving(registry.write_serving_export(h, champion))


@models_app.command("history")
def models_history(
    eval_set_version: int = typer.Option(1, "--eval-set-version", help="scores are only compared within one eval-set version"),
    plot: Path | None = typer.Option(None, "--plot", help="also write the score-history PNG here"),
    home: Path | None = _HOME_OPT,
    database_url: str | None = _DB_OPT,
) -> None:
    """The fixed-set score of every evaluation cycle (candidate vs champion, gate outcome)."""
    from rich.table import Table

    from flywheel.models import registry

    _, db = _home_and_db(home, database_url)
    rows = registry.score_history(db, eval_set_version)
    table = Table(title=f"score history (eval set v{eval_set_version})")
    for col in ("cycle", "when", "candidate", "vs", "metric", "candidate score", "champion score", "Δ (95% CI)", "outcome"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["cycle"]), r["at"].strftime("%Y-%m-%d %H:%M"), r["candidate"], r["champion"],
                      r["primary_metric"], f"{r['candidate_score']:.4f}", f"{r['champion_score']:.4f}",
                      f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", r["outcome"])
    console.print(table)
    if plot is not None:
        console.print(f"wrote {registry.plot_score_history(rows, plot)}")


# --- status and demo ----------------------------------------------------------------------------
_PROJECT_OPT = typer.Option(None, "--project", help="folder holding flywheel.yaml (default: $FLYWHEEL_PROJECT or the cwd)")


def _project_home_db(project: Path | None, home: Path | None, database_url: str | None) -> tuple:
    """(ProjectConfig, FlywheelHome, database URL) from the options, else the environment, else defaults."""
    import os

    from flywheel.config import parse_project

    folder = project or Path(os.environ.get("FLYWHEEL_PROJECT") or ".")
    try:
        cfg = load_project(folder) if (folder / "flywheel.yaml").exists() or folder.suffix in (".yaml", ".yml") \
            else parse_project({}, source=f"{folder} (no flywheel.yaml: defaults)", root=folder.resolve())
    except ConfigError as exc:
        fail(str(exc))
    fw_home = FlywheelHome(home) if home else FlywheelHome.from_env()
    return cfg, fw_home, database_url or fw_home.database_url()


@app.command()
def status(project: Path | None = _PROJECT_OPT, home: Path | None = _HOME_OPT, database_url: str | None = _DB_OPT) -> None:
    """One screen: last captured day, pending review batches, latest dataset, champion, score history, next step."""
    from flywheel.ops.status import collect_status, render_status

    cfg, fw_home, url = _project_home_db(project, home, database_url)
    console.print(render_status(collect_status(cfg, fw_home, url)))


def _ensure_dagster_home() -> Path:
    """$DAGSTER_HOME, defaulting (like `make ui`) to ./.dagster: created with SQLite storage and no telemetry."""
    import os

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
    import os
    import sys

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
    small: bool = typer.Option(False, help="a reduced scenario (fewer rows, two cycles): about a minute"),
    keep: bool = typer.Option(False, help="keep the previous demo state instead of starting clean"),
) -> None:
    """Run the deterministic demo: simulated traffic -> capture -> labeling -> simulated review -> dataset
    -> retrain -> evaluation -> gate -> promotion, over several cycles, through the real Dagster jobs on
    the instance in $DAGSTER_HOME. Writes $FLYWHEEL_HOME/reports/demo.md."""
    import os

    from rich.table import Table

    from flywheel.demo.run import DEMO_PROJECT_DIR, DemoError, reset_home, run_demo, summary_rows
    from flywheel.demo.scenario import FULL, SMALL

    _ensure_dagster_home()
    fw_home = FlywheelHome.from_env()
    project_dir = fw_home.path(DEMO_PROJECT_DIR)
    # the jobs read the project and home from the environment, exactly as `make ui` will
    os.environ["FLYWHEEL_HOME"] = str(fw_home.root)
    os.environ["FLYWHEEL_PROJECT"] = str(project_dir)
    os.environ.pop("FLYWHEEL_DATABASE_URL", None)  # the demo keeps its state in the home's SQLite file
    from jobs.runner import InstanceJobRunner  # imports Dagster: only here, never in the library

    runner = InstanceJobRunner(quiet=True)
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

            result = run_demo(runner, fw_home, size=SMALL if small else FULL, keep=True, say=say)
    except DemoError as exc:
        fail(f"{exc} (see {log_path})", code=1)
    table = Table(title=f"flywheel demo: {len(result.cycles)} cycles in {result.seconds:.0f} s "
                        "(chrF on the fixed eval set; full reasons in the report)")
    for col in ("cycle", "examples by source", "dataset", "overall", "clean", "messy", "edge", "outcome"):
        table.add_column(col, overflow="fold")
    short = {"human": "human", "human_fixed": "fixed", "real": "real", "synthetic": "synth", "distilled": "distilled"}
    for r in summary_rows(result.cycles):
        cycle = result.cycles[len(table.rows)]
        sources = " ".join(f"{short.get(k, k)} {v}" for k, v in sorted(cycle.by_source.items()))
        outcome = "promoted" if cycle.promoted else "blocked: " + (cycle.blocked_reason or "").split(";")[0][:60]
        table.add_row(r["cycle"], sources, (cycle.dataset_version or "-")[:8], r["overall"], r["clean"], r["messy"],
                      r["edge_case"], outcome, style="green" if cycle.promoted else "red")
    console.print(table)
    console.print(f"report: {result.report}\nproject: {result.project_dir}\n"
                  f"next: `make ui` (runs, lineage, checks) and `FLYWHEEL_PROJECT={result.project_dir} flywheel status`")


@app.command()
def backfill(
    step: str = typer.Argument(..., help="capture (daily partitions) or labeling (weekly, Monday keys)"),
    start: str = typer.Option(..., "--from", help="first day YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="last day YYYY-MM-DD (inclusive)"),
) -> None:
    """Run a job's partitions one by one through the Dagster instance ($DAGSTER_HOME, default ./.dagster),
    oldest first. The same as `dagster job backfill -j daily_capture --partitions ...` or a UI backfill."""
    from jobs.runner import BACKFILL_JOBS, InstanceJobRunner, partition_keys

    if step not in BACKFILL_JOBS:
        fail(f"unknown step {step!r}; expected one of {sorted(BACKFILL_JOBS)}")
    try:
        keys = partition_keys(step, start, end)
    except ValueError as exc:
        fail(str(exc))
    _ensure_dagster_home()
    runner = InstanceJobRunner()
    failed = 0
    for key in keys:
        outcome = runner.run(BACKFILL_JOBS[step], partition_key=key, tags={"flywheel/trigger": "backfill"})
        failed += not outcome.success
        mark = "[green]ok[/]" if outcome.success else "[red]failed[/]"
        console.print(f"{BACKFILL_JOBS[step]} {key}: {mark} run {outcome.run_id}")
    if failed:
        fail(f"{failed} of {len(keys)} partitions failed", code=1)



if __name__ == "__main__":
    app()
