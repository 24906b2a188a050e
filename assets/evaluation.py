"""Evaluation assets: the frozen fixed eval set, the candidate-vs-champion evaluation with its
regression gate, and the champion promotion (a separate asset, so a failed gate changes nothing)."""


import dagster as dg

from assets.metadata import png_metadata
from assets.partitions import quarterly_partitions
from assets.resources import FlywheelResource
from flywheel.core.quarters import quarter_label
from flywheel.evaluation.cycle import (
    PromotionRefused,
    candidate_verdict,
    check_candidate_gate,
    promote_candidate,
    run_evaluation_cycle,
)
from flywheel.evaluation.cycle import build_fixed_eval_set as build_eval_set
from flywheel.evaluation.eval_set import EVAL_SET, NO_SLICE, read_eval_set_info
from flywheel.evaluation.quarters import (
    promotion_refusal,
    quarter_candidate,
    quarters_markdown,
    record_quarter_verdict,
)
from flywheel.evaluation.report import slice_counts_markdown, summary_markdown, worst_regressions_markdown
from flywheel.models import history, registry


@dg.asset(group_name="evaluation", kinds={"parquet", "python"})
def fixed_eval_set(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The user's fixed eval file (config evaluation.eval_set), read in any of the three formats with its
    slice tags; its content hash is frozen per eval-set version in the model registry."""
    project = flywheel.project()
    info = build_eval_set(project, flywheel.home(), flywheel.db_url())
    context.log.info(f"eval set: {info['items']} items of {info['read']} rows, slices {info['slices']}")
    return dg.MaterializeResult(
        metadata={
            "items": info["items"],
            "rows_read": info["read"],
            "invalid_rows": info["invalid"],
            "format": info["format"],
            "content_hash": info["content_hash"],
            "frozen_hash": info["frozen_hash"] or "(not frozen)",
            "eval_set_version": info["eval_set_version"],
            "slices": dg.MetadataValue.md(slice_counts_markdown(info["slices"])),
            "pii_ner": info["pii_scan"]["ner"] if info.get("pii_scan") else False,
            "pii_scan": dg.MetadataValue.json(info.get("pii_scan") or {}),
            "path": dg.MetadataValue.path(str(flywheel.home().warehouse(*EVAL_SET))),
        }
    )


@dg.asset_check(asset=fixed_eval_set, blocking=True, description="at least evaluation.min_items usable items")
def eval_set_min_items(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    info = read_eval_set_info(flywheel.home())
    minimum = flywheel.project().evaluation.min_items
    return dg.AssetCheckResult(
        passed=info["items"] >= minimum,
        description=f"{info['items']} items (minimum {minimum}) in {info['file']}",
        metadata={"items": info["items"], "min_items": minimum, "slices": dg.MetadataValue.json(info["slices"])},
    )


@dg.asset_check(asset=fixed_eval_set, blocking=True, description="every row of the eval file is usable")
def eval_set_rows_valid(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    info = read_eval_set_info(flywheel.home())
    quarantine = flywheel.home().quarantine("fixed_eval_set", "current")
    return dg.AssetCheckResult(
        passed=info["invalid"] == 0,
        description=f"{info['invalid']} of {info['read']} rows unusable: {info['invalid_reasons']} (see {quarantine})",
        metadata={"invalid": info["invalid"], "reasons": dg.MetadataValue.json(info["invalid_reasons"])},
    )


@dg.asset_check(asset=fixed_eval_set, blocking=False, description="at most evaluation.max_items items (the guide's 100-200)")
def eval_set_max_items(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    info = read_eval_set_info(flywheel.home())
    maximum = flywheel.project().evaluation.max_items
    return dg.AssetCheckResult(
        passed=info["items"] <= maximum,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{info['items']} items (the guide's range is 100-{maximum}: every item is generated twice per cycle)",
        metadata={"items": info["items"], "max_items": maximum},
    )


@dg.asset_check(asset=fixed_eval_set, blocking=False, description="every item carries a slice tag")
def eval_set_has_slices(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    info = read_eval_set_info(flywheel.home())
    untagged = info["slices"].get(NO_SLICE, 0)
    return dg.AssetCheckResult(
        passed=untagged == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{untagged} items without a slice; counts {info['slices']}",
        metadata={"untagged": untagged, "slices": dg.MetadataValue.md(slice_counts_markdown(info["slices"]))},
    )


@dg.asset_check(asset=fixed_eval_set, blocking=True,
                description="the eval set equals the frozen content of its eval_set_version")
def eval_set_frozen(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    info = read_eval_set_info(flywheel.home())
    frozen = registry.frozen_eval_set(flywheel.db_url(), info["eval_set_version"])
    if frozen is None:
        return dg.AssetCheckResult(passed=False, description=(
            f"eval set version {info['eval_set_version']} is not frozen yet (it is frozen once it has "
            "at least min_items usable items and no invalid rows)"))
    same = frozen["content_hash"] == info["content_hash"]
    desc = (f"eval set version {info['eval_set_version']} matches its frozen hash {frozen['content_hash']}" if same else
            f"{info['file']} changed: hash {info['content_hash']} != frozen {frozen['content_hash']} of eval set "
            f"version {info['eval_set_version']}. Restore the file, or raise evaluation.eval_set_version to start "
            "a new eval-set version (scores across versions are not compared)")
    return dg.AssetCheckResult(passed=same, description=desc,
                               metadata={"content_hash": info["content_hash"], "frozen_hash": frozen["content_hash"]})


OUTCOME_TAG = "flywheel/outcome"


@dg.asset(group_name="evaluation", kinds={"pytorch", "parquet"}, deps=["lora_adapter", fixed_eval_set],
          partitions_def=quarterly_partitions,
          check_specs=[dg.AssetCheckSpec("gate_verdict", asset="candidate_evaluation",
                                         description="the gate's verdict: promoted | held | blocked, with its reasons")])
def candidate_evaluation(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Answers of the candidate (base + LoRA), of its seed replicates and of the champion (or the base
    model) on every fixed eval item, scored per slice with paired-bootstrap intervals widened by the
    training-seed spread; the gate's verdict (promoted | held | blocked) is this asset's check and the
    run's `flywheel/outcome` tag. Held and blocked are outcomes: the run succeeds, the champion stays.
    One partition per quarter: the quarter's model, its score recorded on the quarter (`score_by_quarter`)."""
    project, home, quarter = flywheel.project(), flywheel.home(), context.partition_key
    outcome = run_evaluation_cycle(project, home, flywheel.db_url(), candidate=quarter_candidate(home, quarter))
    s, primary, decision = outcome.summary, outcome.summary["primary_metric"], outcome.decision
    record_quarter_verdict(home, quarter, s, decision)
    o = s["overall"][primary]
    context.instance.add_run_tags(context.run_id, {OUTCOME_TAG: decision.outcome})
    context.log.info(f"{s['candidate']} vs {s['champion']}: {primary} {o['candidate']:.4f} vs {o['champion']:.4f}; "
                     f"{decision.outcome}: {decision.reasons}")
    interval = decision.overall
    spread = s.get("seed_spread") or {}
    verdict = dg.AssetCheckResult(
        check_name="gate_verdict",
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{decision.outcome}: {decision.reasons[0] if decision.reasons else ''}",
        metadata={"outcome": decision.outcome, "reasons": dg.MetadataValue.md(_bullets(decision.reasons))},
    )
    return dg.MaterializeResult(
        metadata={
            "outcome": decision.outcome,
            "quarter": quarter_label(quarter),
            "candidate": s["candidate"],
            "champion": s["champion"],
            "eval_set_hash": s["eval_set_hash"],
            "items": s["n_items"],
            f"candidate_{primary}": round(o["candidate"], 4),
            f"champion_{primary}": round(o["champion"], 4),
            f"diff_{primary}": round(o["diff"], 4),
            "interval_95": f"[{interval.low:+.4f}, {interval.high:+.4f}]" if interval else "-",
            "bootstrap_ci_95": f"[{o['ci_low']:+.4f}, {o['ci_high']:+.4f}]",
            "seed_sd": round(float(spread.get("overall", 0.0)), 4),
            "minimum_detectable_difference": round(interval.mde, 4) if interval else None,
            "underpowered_slices": ", ".join(decision.underpowered) or "none",
            "gate_reasons": dg.MetadataValue.md(_bullets(decision.reasons)),
            "champion_answers_cached": outcome.champion_cached,
            "scores": dg.MetadataValue.md(summary_markdown(s)),
            "worst_regressions": dg.MetadataValue.md(worst_regressions_markdown(outcome.answers, primary)),
            "score_history": png_metadata(str(outcome.report_dir / "score_history.png"), "score history"),
            "score_history_table": dg.MetadataValue.md(history.score_history_markdown(outcome.history)),
            "score_by_quarter": dg.MetadataValue.md(quarters_markdown(home)),
            "answers": dg.MetadataValue.path(str(outcome.report_dir / "answers.parquet")),
            "summary": dg.MetadataValue.path(str(outcome.report_dir / "summary.json")),
        },
        check_results=[verdict],
    )


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {r}" for r in lines) or "none"


@dg.asset_check(asset=candidate_evaluation, blocking=False,
                description="the gate re-applied: a fresh eval-leak look and the frozen eval-set hash")
def gate_recheck(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    home = flywheel.home()
    quarter = context.partition_key if context.has_partition_key else None
    candidate, summary, decision, leaked = check_candidate_gate(
        flywheel.project(), home, flywheel.db_url(), candidate=quarter_candidate(home, quarter) if quarter else None)
    return dg.AssetCheckResult(
        passed=decision.outcome == (summary.get("gate") or {}).get("outcome"),
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{decision.outcome} (recorded: {(summary.get('gate') or {}).get('outcome')})",
        metadata={"candidate": candidate.version, "champion": summary["champion"], "leaked_items": leaked,
                  "reasons": dg.MetadataValue.md(_bullets(decision.reasons))},
    )


@dg.asset(group_name="evaluation", kinds={"sqlite", "python"}, deps=[candidate_evaluation], output_required=False,
          partitions_def=quarterly_partitions)
def champion_model(context: dg.AssetExecutionContext, flywheel: FlywheelResource):  # noqa: ANN201 (generator)
    """Promote the quarter's candidate when the gate promoted it and the quarter is the newest retrained one:
    registry status champion (the old one retired), `models/champion.json` and `reports/serving.md` with the
    vLLM command. A held or blocked candidate, or a past quarter's (a backfill), leaves the champion untouched
    and this asset is skipped (not failed)."""
    home, quarter = flywheel.home(), context.partition_key
    candidate, outcome, reasons = candidate_verdict(home, quarter_candidate(home, quarter))
    if outcome != "promoted":
        context.log.info(f"{candidate.version} was {outcome}: the champion stays ({'; '.join(reasons[:2])})")
        return
    refusal = promotion_refusal(home, quarter)
    if refusal:
        context.log.info(f"{candidate.version} passed the gate, the champion stays: {refusal}")
        return
    try:
        promotion = promote_candidate(flywheel.project(), home, flywheel.db_url(),
                                      actor=f"dagster run {context.run_id[:8]} (champion_model)", candidate=candidate)
    except PromotionRefused as exc:
        raise dg.Failure(description=str(exc)) from exc
    record, info = promotion.record, promotion.serving
    for warning in info["warnings"]:
        context.log.warning(f"serving export of {record.version}: {warning}")
    yield dg.MaterializeResult(
        metadata={
            "champion": record.version,
            "quarter": quarter_label(quarter),
            "promoted_by": record.promoted_by or "",
            "reason": record.reason or "",
            "adapter_path": dg.MetadataValue.path(info["path"]),
            "vllm_command": dg.MetadataValue.md(f"```bash\n{info['vllm_command']}\n```"),
            "serving": dg.MetadataValue.path(str(home.reports() / "serving.md")),
            "serving_warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in info["warnings"]) or "none"),
            "score_history": png_metadata(str(promotion.plot), "score history"),
            "score_history_table": dg.MetadataValue.md(history.score_history_markdown(promotion.history)),
        }
    )
