"""curation assets: example sources (seed, synthetic, distilled) and the versioned training dataset.

`reviewed_examples` (weekly) belongs to the labeling group and `fixed_eval_set` to evaluation; the
training dataset reads every existing weekly file of the former and the latter for decontamination.
A synthetic or distilled file trains only once its admission sample (a review batch registered when
its source asset materializes) is reviewed and passes. Blocking checks (format and answer format, size
floor, real:synthetic ratio, eval contamination, rubric, sources admitted) stop a run before training;
warning checks report generator share, diversity drop, distribution gap, conflicts pending review and
size under the target.
"""


from typing import Any

import dagster as dg

from assets.metadata import png_metadata
from assets.partitions import quarterly_partitions
from assets.resources import FlywheelResource
from flywheel.core.markdown import markdown_table
from flywheel.core.quarters import quarter_cutoff, quarter_label
from flywheel.curation.admission import admission_markdown, materialize_source, verify_admission
from flywheel.curation.build import CurationError, build_training_dataset
from flywheel.curation.card import (
    admission_table,
    diversity_changes_table,
    diversity_table,
    gap_table,
    rules_table,
    steps_table,
)
from flywheel.curation.review_batches import conflict_review_status
from flywheel.curation.sources import SOURCE_TABLES
from flywheel.curation.versions import read_manifest
from flywheel.project import rubric_problem

GROUP = "curation"
SOURCE_ASSETS = tuple(SOURCE_TABLES)


def _materialize_source(flywheel: FlywheelResource, asset: str) -> dg.MaterializeResult:
    src = materialize_source(flywheel.project(), flywheel.home(), flywheel.db_url(), asset)
    load, out = src.load, src.path
    admission = {
        "admission": dg.MetadataValue.md(admission_markdown(src.admission)),
        "pending_review": ", ".join(src.pending_batches) or "none",
    } if src.admission else {}
    return dg.MaterializeResult(metadata={
        **admission,
        "read": load.read,
        "accepted": len(load.examples),
        "quarantined": len(load.quarantine),
        "files": dg.MetadataValue.md(markdown_table(
            ["file", "format", "read", "accepted", "quarantined"],
            [[f["file"], f["format"], f["read"], f["accepted"], f["quarantined"]] for f in load.files])),
        "quarantine_reasons": dg.MetadataValue.md(markdown_table(["reason", "rows"], list(load.quarantine_reasons().items()))),
        "path": dg.MetadataValue.path(str(out)),
    })


@dg.asset(group_name=GROUP, kinds={"python", "parquet"})
def seed_examples(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Human-written examples from `sources.seed` (ChatML, ShareGPT or Alpaca), converted; source=human."""
    return _materialize_source(flywheel, "seed_examples")


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[dg.AssetKey("generated_synthetic")])
def synthetic_examples(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Generator-written examples from `sources.synthetic` and the generation runs (`generated/synthetic/`);
    every row must name its `generator` (a file without any is refused, single rows without one are
    quarantined). Each file gets its admission sample batch `admission-<file>-<hash>`; its rows train once
    the sample is reviewed and passes."""
    return _materialize_source(flywheel, "synthetic_examples")


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[dg.AssetKey("generated_distilled")])
def distilled_examples(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """A teacher model's answers to real inputs from `sources.distilled` and the distillation runs
    (`generated/distilled/`); the teacher is named per row in `teacher` (or `generator`) and becomes the
    example's generator; source=distilled. Each file gets its admission sample batch, like a synthetic file."""
    return _materialize_source(flywheel, "distilled_examples")


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    deps=[*SOURCE_ASSETS, dg.AssetKey("reviewed_examples"), dg.AssetKey("fixed_eval_set")],
    partitions_def=quarterly_partitions,
)
def training_dataset(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Every source merged and curated (format, rubric rules and answer format, duplicates, conflicts,
    decontamination, balance, size) into `datasets/<version>/` (version = content hash), with a dataset card.
    One partition per quarter: what was captured and reviewed before the quarter's end (the current quarter:
    everything so far); the newest quarter's version becomes `datasets/LATEST`."""
    try:
        build = build_training_dataset(flywheel.project(), flywheel.home(), flywheel.db_url(),
                                       quarter=context.partition_key)
    except CurationError as exc:
        raise dg.Failure(description=str(exc)) from exc
    dv = build.version
    m = dv.manifest
    for w in build.warnings + m["warnings"]:
        context.log.warning(w)
    return dg.MaterializeResult(metadata={
        "version": m["version"],
        "quarter": quarter_label(context.partition_key),
        "reviewed_weeks_until": quarter_cutoff(context.partition_key).date().isoformat(),
        "content_hash": m["content_hash"],
        "rows": m["counts"]["train"],
        "input_rows": m["counts"]["input"],
        "dropped": m["counts"]["dropped"],
        "flagged": m["counts"]["flagged"],
        "conflicts": m["counts"]["conflicts"],
        "synthetic_per_real": m["ratios"]["synthetic_per_real"],
        "self_generated_share": m["ratios"]["self_generated_share"],
        "admission": dg.MetadataValue.md(admission_table(m["admission"])) if m.get("admission")
        else "no synthetic or distilled files",
        "held_out_files": ", ".join(a["name"] for a in m.get("admission") or [] if a["status"] != "admitted") or "none",
        "conflict_verdicts_applied": dg.MetadataValue.json(m["conflict_review"]),
        "steps": dg.MetadataValue.md(steps_table(m["steps"])),
        "rules": dg.MetadataValue.md(rules_table(m["rules"])),
        "diversity": dg.MetadataValue.md(diversity_table(m["diversity"])),
        "diversity_changes": dg.MetadataValue.md(diversity_changes_table(m["diversity_changes"]))
        if m["diversity_changes"] else "no previous version",
        "production_gap": dg.MetadataValue.md(gap_table(m["production_gap"])),
        "gap_score": m["production_gap"].get("gap_score"),
        "input_lengths": png_metadata(dv.path / m["plots"]["input_lengths"], "input length, training vs production"),
        "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in m["warnings"]) or "none"),
        "pii_ner": bool(m["facts"].get("pii_scan", {}).get("ner")),  # False: names were checked by patterns only
        "pii_scan": dg.MetadataValue.json(m["facts"].get("pii_scan") or {}),
        "review_batch": build.review_batch or "(not registered)",
        "conflict_batch": build.conflict_batch or ("(already registered)" if m["counts"]["conflicts"] else "(no conflicts)"),
        "card": dg.MetadataValue.path(str(dv.path / "card.md")),
        "path": dg.MetadataValue.path(str(dv.path)),
    })


# --- checks ------------------------------------------------------------------------------------------
def _latest_manifest(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> tuple[str | None, dict[str, Any] | None]:
    """The version the latest materialization wrote, and its manifest."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("training_dataset"))
    version = None
    if event and event.asset_materialization:
        entry = event.asset_materialization.metadata.get("version")
        version = entry.value if entry is not None else None
    return version, read_manifest(flywheel.home(), str(version)) if version else None


def _rule(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource, name: str) -> dg.AssetCheckResult:
    """The named rule of the dataset version the latest materialization wrote."""
    version, manifest = _latest_manifest(context, flywheel)
    if manifest is None:
        return dg.AssetCheckResult(passed=False, description="no materialized training dataset version to check")
    rule = next((r for r in manifest["rules"] if r["name"] == name), None)
    if rule is None:
        return dg.AssetCheckResult(passed=False, description=f"dataset {version} has no rule {name}")
    return dg.AssetCheckResult(
        passed=bool(rule["passed"]), description=rule["message"],
        metadata={"version": version, "pii_ner": bool(manifest["facts"].get("pii_scan", {}).get("ner"))},
        severity=dg.AssetCheckSeverity.ERROR if rule["blocking"] else dg.AssetCheckSeverity.WARN,
    )


@dg.asset_check(asset=training_dataset, blocking=True)
def format_consistent(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Every row is valid canonical ChatML, carries the configured system prompt and its answer complies with
    the configured answer format (`answer_regex` fully matching, `answer_json_schema`)."""
    return _rule(context, flywheel, "format_consistent")


@dg.asset_check(asset=training_dataset, blocking=True)
def size_floor(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """At least `curation.min_examples` examples."""
    return _rule(context, flywheel, "size_floor")


@dg.asset_check(asset=training_dataset, blocking=True)
def real_synthetic_ratio(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Synthetic rows at most `max_synthetic_per_real` per real or human-written row."""
    return _rule(context, flywheel, "real_synthetic_ratio")


@dg.asset_check(asset=training_dataset, blocking=True)
def no_eval_contamination(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """No shared n-gram or near-duplicate input with the fixed eval set (fails when the eval set is missing)."""
    return _rule(context, flywheel, "no_eval_contamination")


@dg.asset_check(asset=training_dataset, blocking=True)
def sources_admitted(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """No row of a synthetic or distilled file whose admission sample is not reviewed and passed (decisions read
    again now) is in the version; names every file held out and why."""
    version, manifest = _latest_manifest(context, flywheel)
    if manifest is None:
        return dg.AssetCheckResult(passed=False, description="no materialized training dataset version to check")
    check = verify_admission(flywheel.project(), flywheel.home(), flywheel.db_url(), str(version))
    return dg.AssetCheckResult(passed=check.passed, description=check.message, metadata={
        "version": version,
        "files": dg.MetadataValue.md(markdown_table(["file", "rows in version", "status now", "detail"],
                                                    [list(f.values()) for f in check.files])),
    })


@dg.asset_check(asset=training_dataset, blocking=True)
def rubric_edited(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """The project's rubric exists and is no longer the unedited template."""
    problem = rubric_problem(flywheel.project())
    return dg.AssetCheckResult(passed=problem is None, description=problem or "rubric present and edited")


@dg.asset_check(asset=training_dataset)
def single_generator_share(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Warn when one generator wrote more than `max_generator_share` of the synthetic rows."""
    return _rule(context, flywheel, "single_generator_share")


@dg.asset_check(asset=training_dataset)
def diversity_drop(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Warn when a diversity measure fell by more than `diversity_drop_warn` since the previous version."""
    return _rule(context, flywheel, "diversity_drop")


@dg.asset_check(asset=training_dataset)
def distribution_gap(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Warn when training inputs differ from recent production inputs by more than `distribution_gap_warn`."""
    return _rule(context, flywheel, "distribution_gap")


@dg.asset_check(asset=training_dataset)
def conflicts_pending_review(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Warn while conflicting examples (same input, contradicting answers) wait for review in the batch
    `conflicts-<version>` (passes once every item is decided or the batch is closed)."""
    version, manifest = _latest_manifest(context, flywheel)
    if manifest is None:
        return dg.AssetCheckResult(passed=False, description="no materialized training dataset version to check",
                                   severity=dg.AssetCheckSeverity.WARN)
    passed, message = conflict_review_status(flywheel.db_url(), str(version), int(manifest["counts"]["conflicts"]))
    return dg.AssetCheckResult(passed=passed, description=message, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"version": version, "conflicts": manifest["counts"]["conflicts"]})


@dg.asset_check(asset=training_dataset)
def size_target(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Warn below `curation.target_examples`."""
    return _rule(context, flywheel, "size_target")
