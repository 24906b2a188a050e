"""`flywheel models ...`: the registry (list, promote, roll back, score history).

A promotion or rollback made here is also recorded on the orchestrator's `champion_model` asset (a
runless materialization), so the catalog names the real champion; without an orchestrator or an
instance the registry change stands and a note says the catalog was not updated.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from flywheel.cli.app import models_app
from flywheel.cli.output import DB_OPT, HOME_OPT, console, fail, home_and_db
from flywheel.ops.runs import load_orchestrator


def _score_cell(overall: dict[str, float], metric: str | None = None) -> str:
    if not overall:
        return "-"
    keys = [metric] if metric and metric in overall else sorted(overall)
    return ", ".join(f"{k} {overall[k]:.3f}" for k in keys)


@models_app.command("list")
def models_list(home: str | None = HOME_OPT, database_url: str | None = DB_OPT) -> None:
    """Every model version in the registry with its status, scores and who promoted it."""
    from rich.table import Table

    from flywheel.models import registry

    _, db = home_and_db(home, database_url)
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



def _record_on_orchestrator(version: str, action: str, by: str | None, reason: str | None) -> None:
    """Record the registry change on the orchestrator's champion asset; a note when that is not possible."""
    try:
        load_orchestrator().record_champion_change(version, action, by or "", reason or "")
    except Exception as exc:  # the registry change is done: the catalog update is best effort
        console.print(f"[yellow]note:[/] champion_model in the Dagster catalog not updated ({escape(str(exc))}); "
                      "the registry change stands")
        return
    console.print(f"recorded on champion_model: {action} {version}")


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
    home: str | None = HOME_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Make VERSION the champion; refused without --force when it failed the gate."""
    from flywheel.models import registry
    from flywheel.models.serving import export_champion

    h, db = home_and_db(home, database_url)
    try:
        rec = registry.promote(db, version, by=by, reason=reason, force=force)
    except registry.RegistryError as exc:
        fail(str(exc))
    console.print(f"[bold green]{rec.version} is the champion[/] (promoted by {rec.promoted_by}: {rec.reason})")
    _print_serving(export_champion(h, db))
    forced = (rec.reason or "").startswith("manual override")
    _record_on_orchestrator(rec.version, "forced" if forced else "promoted", rec.promoted_by, rec.reason)


@models_app.command("rollback")
def models_rollback(
    reason: str = typer.Option("manual rollback", "--reason", help="why (recorded in the registry log)"),
    by: str | None = typer.Option(None, "--by", help="who rolls back (default: $USER)"),
    home: str | None = HOME_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Champion -> the previous champion; the current one is retired."""
    from flywheel.models import registry
    from flywheel.models.serving import export_champion

    h, db = home_and_db(home, database_url)
    try:
        retired, champion = registry.rollback(db, by=by, reason=reason)
    except registry.RegistryError as exc:
        fail(str(exc))
    console.print(f"retired {retired.version}; [bold green]{champion.version} is the champion again[/]")
    _print_serving(export_champion(h, db))
    _record_on_orchestrator(champion.version, "rollback", champion.promoted_by, champion.reason)


@models_app.command("history")
def models_history(
    eval_set_version: int = typer.Option(1, "--eval-set-version", help="scores are only compared within one eval-set version"),
    plot: Path | None = typer.Option(None, "--plot", help="also write the score-history PNG here"),
    home: str | None = HOME_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """The fixed-set score of every evaluation cycle (candidate vs champion, gate outcome)."""
    from rich.table import Table

    from flywheel.models import history

    _, db = home_and_db(home, database_url)
    rows = history.score_history(db, eval_set_version)
    table = Table(title=f"score history (eval set v{eval_set_version})")
    for col in ("cycle", "when", "candidate", "vs", "metric", "candidate score", "champion score", "Δ (95% CI)", "outcome"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["cycle"]), r["at"].strftime("%Y-%m-%d %H:%M"), r["candidate"], r["champion"],
                      r["primary_metric"], f"{r['candidate_score']:.4f}", f"{r['champion_score']:.4f}",
                      f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", r["outcome"])
    console.print(table)
    if plot is not None:
        console.print(f"wrote {history.plot_score_history(rows, plot)}")
