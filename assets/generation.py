"""generation assets: synthetic examples from several generator models and a teacher's answers to the week's
production inputs (both weekly, written to `generated/<kind>/<week>.jsonl`, which curation's
`synthetic_examples` / `distilled_examples` read and send to admission review), the teacher's scorecard on
the fixed eval set beside the champion, and the collapse watch across generations.
"""

import json
from typing import Any

import dagster as dg

from assets.partitions import weekly_partitions
from assets.resources import FlywheelResource
from flywheel.core.errors import InputError
from flywheel.core.markdown import markdown_table
from flywheel.curation.collapse import collapse_markdown
from flywheel.curation.collapse import collapse_watch as watch_collapse
from flywheel.evaluation.teacher import BETTER, teacher_path
from flywheel.evaluation.teacher import teacher_scorecard as score_teacher
from flywheel.generation.client import EndpointError
from flywheel.generation.distillation import distill_week
from flywheel.generation.runs import GenerationRun, tallies_markdown
from flywheel.generation.synthetic import generate_synthetic

GROUP = "generation"
_DAILY_TO_WEEKLY = dg.TimeWindowPartitionMapping()


def _bullets(lines: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- {line}" for line in lines) or "none")


def _run_metadata(run: GenerationRun) -> dict[str, Any]:
    summary = run.summary()
    return {
        "target": run.target,
        "accepted": len(run.rows),
        "quarantined": len(run.quarantine),
        "tokens": run.tokens,
        "token_budget": run.token_budget,
        "failed_requests": sum(t.failed_requests for t in run.tallies.values()),
        "per_model": dg.MetadataValue.md(tallies_markdown(run)) if run.tallies else "no models ran",
        "quarantine_reasons": dg.MetadataValue.json(summary["quarantine_reasons"]),
        "notes": _bullets(run.notes),
        "path": dg.MetadataValue.path(str(run.path)) if run.path else "(no rows written)",
    }


@dg.asset(
    partitions_def=weekly_partitions,
    group_name=GROUP,
    kinds={"python", "openai"},
    deps=[dg.AssetDep(dg.AssetKey("interactions"), partition_mapping=_DAILY_TO_WEEKLY),
          dg.AssetDep(dg.AssetKey("reviewed_examples"), partition_mapping=dg.AllPartitionMapping())],
)
def generated_synthetic(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The week's synthetic examples: each configured generator (OpenAI-compatible endpoint, its own prompt) writes
    examples from the rubric, seed examples and the production input profile, within the generator-share cap, the
    real:synthetic ratio and the run's example and token budgets; inputs as messy as production's. A generator that
    fails leaves the others' rows; the table says what is missing and why."""
    run = generate_synthetic(flywheel.project(), flywheel.home(), context.partition_key)
    for note in run.notes:
        context.log.info(note)
    kinds = run.facts.get("input_kinds", {})
    return dg.MaterializeResult(metadata={
        **_run_metadata(run),
        "generator_shares": dg.MetadataValue.json(run.facts.get("generator_shares", {})),
        "families": dg.MetadataValue.json(run.facts.get("families", {})),
        "input_kinds": dg.MetadataValue.md(markdown_table(
            ["kind", "production", "generated"], [[k, v["production"], v["generated"]] for k, v in kinds.items()]))
        if kinds else "no rows",
        "under_covered_kinds": ", ".join(run.facts.get("under_covered_kinds", [])) or "none",
    })


@dg.asset(
    partitions_def=weekly_partitions,
    group_name=GROUP,
    kinds={"python", "openai"},
    deps=[dg.AssetDep(dg.AssetKey("interactions"), partition_mapping=_DAILY_TO_WEEKLY)],
)
def generated_distilled(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The teacher's answers to the week's real production inputs (one per distinct input, within the ratio and
    budgets). A teacher that is the deployed model itself is refused unless `generation.allow_self_teacher`."""
    try:
        run = distill_week(flywheel.project(), flywheel.home(), context.partition_key)
    except InputError as exc:
        raise dg.Failure(description=str(exc)) from exc
    return dg.MaterializeResult(metadata={
        **_run_metadata(run),
        "inputs_this_week": run.facts.get("inputs_this_week", 0),
        "not_answered": run.facts.get("not_answered", 0),
    })


@dg.asset(group_name=GROUP, kinds={"python", "openai"}, deps=[dg.AssetKey("fixed_eval_set"), dg.AssetKey("champion_model")])
def teacher_scorecard(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The teacher's answers to the fixed eval set scored beside the champion's with the cycle's metrics: a teacher
    worth distilling is genuinely better (the primary metric's bootstrap interval above zero)."""
    try:
        card = score_teacher(flywheel.project(), flywheel.home(), flywheel.db_url())
    except (InputError, EndpointError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    overall = card["overall"]
    return dg.MaterializeResult(metadata={
        "verdict": card["verdict"],
        "teacher": card["teacher"],
        "champion": card["champion"],
        "primary_metric": card["primary_metric"],
        "scores": dg.MetadataValue.md(markdown_table(
            ["metric", "teacher", "champion", "difference", "95% interval"],
            [[m, round(v["candidate"], 4), round(v["champion"], 4), round(v["diff"], 4),
              f"[{v['ci_low']:.4f}, {v['ci_high']:.4f}]"] for m, v in overall.items()])),
        "failed_items": len(card["failed_items"]),
        "tokens": card["tokens"],
        "path": dg.MetadataValue.path(str(teacher_path(flywheel.home(), card["teacher"]))),
    })


@dg.asset_check(asset=teacher_scorecard)
def teacher_beats_champion(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """The teacher's primary metric is above the champion's beyond noise (else distilling it may not help)."""
    teacher = flywheel.project().generation.teacher
    path = teacher_path(flywheel.home(), teacher.model) if teacher else None
    if path is None or not path.exists():
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description="no teacher scorecard (no teacher configured, or not scored yet)")
    card = json.loads(path.read_text(encoding="utf-8"))
    v = card["overall"][card["primary_metric"]]
    return dg.AssetCheckResult(
        passed=card["verdict"] == BETTER, severity=dg.AssetCheckSeverity.WARN,
        description=f"teacher {card['teacher']} is {card['verdict']} than {card['champion']} on {card['primary_metric']} "
                    f"({v['candidate']:.4f} vs {v['champion']:.4f}, interval [{v['ci_low']:.4f}, {v['ci_high']:.4f}])")


@dg.asset(group_name=GROUP, kinds={"python"},
          deps=[generated_synthetic, generated_distilled, dg.AssetKey("training_dataset")])
def collapse_watch(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Diversity and (with a reference model) perplexity mean and variance of generated answers per generator run
    and per dataset version; a warning when the newest generation narrows (`generation.collapse_*_warn`)."""
    report = watch_collapse(flywheel.project(), flywheel.home())
    return dg.MaterializeResult(metadata={
        "generations": len(report.rows),
        "warnings": _bullets(report.warnings),
        "warning_count": len(report.warnings),
        "reference_model": report.reference or "none",
        "measures": dg.MetadataValue.md(collapse_markdown(report)) if report.rows else "no generated rows yet",
        "notes": _bullets(report.notes),
    })


@dg.asset_check(asset=collapse_watch)
def no_collapse_signs(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """No series' newest generation lost diversity or perplexity variance beyond the configured thresholds."""
    event = context.instance.get_latest_materialization_event(collapse_watch.key)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    count = meta["warning_count"].value if "warning_count" in meta else None
    if count is None:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, description="not measured yet")
    return dg.AssetCheckResult(passed=count == 0, severity=dg.AssetCheckSeverity.WARN,
                               description=meta["warnings"].value if count else "no generation narrowed")
