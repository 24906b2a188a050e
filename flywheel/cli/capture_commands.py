"""`flywheel collect`, `flywheel import` and `flywheel serve`: records from the serving fleet and from
the tools teams already log with, and a local OpenAI-compatible server of the champion."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from flywheel.cli.app import app
from flywheel.cli.output import DB_OPT, HOME_OPT, PROJECT_OPT, console, fail, home_and_db, project_or_fail
from flywheel.core.errors import FlywheelError

IMPORT_KINDS = "openai | otlp | langfuse | openinference | mlflow"


@app.command()
def collect(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0 for a fleet)"),
    port: int = typer.Option(4318, "--port", help="port (4318 is OTLP/HTTP's)"),
    project: Path | None = PROJECT_OPT,
    home: str | None = HOME_OPT,
) -> None:
    """Receive OTLP/HTTP traces of GenAI calls (POST /v1/traces) and feedback (POST /v1/feedback) from a
    serving fleet into the landing zone; clients send `Authorization: Bearer $FLYWHEEL_COLLECTOR_TOKEN`."""
    from flywheel.capture.collector import serve_collector

    cfg = project_or_fail(project).capture.collector
    token = os.environ.get(cfg.token_env, "")
    if not token:
        fail(f"set ${cfg.token_env} to the bearer token clients must send (capture.collector.token_env)")
    h, _ = home_and_db(home)
    console.print(f"collecting into {h.landing('interactions')} on http://{host}:{port} (OTLP/HTTP /v1/traces, /v1/feedback)")
    serve_collector(h, token, cfg, host, port)


@app.command("import")
def import_command(
    kind: str = typer.Argument(..., help=IMPORT_KINDS),
    files: list[Path] = typer.Argument(..., help="export files (JSON or JSON Lines)"),
    project: Path | None = PROJECT_OPT,
    home: str | None = HOME_OPT,
) -> None:
    """Bring logs of other tools into the landing zone (OpenAI completions, OTLP JSON, Langfuse,
    OpenInference/Phoenix, MLflow traces) with their feedback; importing twice adds nothing."""
    from flywheel.capture.importers import import_file

    config = project_or_fail(project).capture
    h, _ = home_and_db(home)
    quarantined = 0
    for path in files:
        try:
            report = import_file(h, kind, path, config)
        except FlywheelError as exc:
            fail(str(exc))
        console.print(report.summary(), markup=False)
        if report.quarantine_file:
            console.print(f"  rejected rows (file, row, reason): {report.quarantine_file}", markup=False)
        quarantined += report.quarantined
    if quarantined:
        raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    project: Path | None = PROJECT_OPT,
    home: str | None = HOME_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Serve the champion (base + LoRA adapter) as an OpenAI-compatible chat-completions API with capture
    built in, for local use and the demo; production serves the vLLM export (`flywheel models promote`)."""
    from flywheel.models.server import serve as run_server

    cfg = project_or_fail(project)
    h, db = home_and_db(home, database_url)
    console.print(f"serving the champion on http://{host}:{port}/v1 (capture into {h.root})")
    try:
        run_server(h, db, cfg.training.base_model, cfg.capture.collector, host, port, device)
    except FlywheelError as exc:
        fail(str(exc))
