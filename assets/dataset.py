"""dataset assets: example sources (seed, synthetic, distilled) and the versioned training dataset.

`reviewed_examples` (weekly) belongs to the labeling group and `fixed_eval_set` to evaluation; the
training dataset reads every existing weekly file of the former and the latter for decontamination.
Blocking checks (format, size floor, real:synthetic ratio, eval contamination, rubric) stop a run
before training; warning checks report generator share, diversity drop, distribution gap,
conflicts pending review and size under the target.
"""


import datetime as dt
from typing import Any

import dagster as dg

from assets.metadata import png_metadata
from assets.resources import FlywheelResource
from flywheel.core.records import examples_table
from flywheel.core.storage import write_parquet
from flywheel.curation.pipeline import (
    SourceLoad,
    conflict_review_status,
    curate,
    load_source_examples,
    quarantine_table,
    read_eval_items,
    read_examples,
    read_manifest,
    register_conflict_review,
    register_review_sample,
    write_dataset_version,
)
from flywheel.curation.production_gap import recent_production_inputs
from flywheel.project import rubric_problem, rubric_text

GROUP = "dataset"
SOURCE_ASSETS = ("seed_examples", "synthetic_examples", "distilled_examples")


def _md(header: list[str], rows: list[list[Any]]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


DIVERSITY_COLUMNS = ("n", "distinct_1", "distinct_2", "compression_ratio", "self_bleu", "cluster_coverage")


def _diversity_md(diversity: dict[str, Any]) -> dg.MetadataValue:
    groups = [("overall", diversity.get("overall", {})), *diversity.get("groups", {}).items()]
    return _md(["group", *DIVERSITY_COLUMNS], [[g, *(s.get(k) for k in DIVERSITY_COLUMNS)] for g, s in groups])


def _gap_md(gap: dict[str, Any]) -> dg.MetadataValue:
    if not gap.get("available"):
        return dg.MetadataValue.md("no production traffic to compare with")
    rows = [["length KS", gap["length_ks"], ""], ["classifier AUC", gap["classifier_auc"], "0.5 = indistinguishable"],
            ["median words", gap["median_words"]["production"], gap["median_words"]["training"]]]
    rows += [[f"share {k}", v["production"], v["training"]] for k, v in gap["shares"].items()]
    rows.append(["under-covered kinds", ", ".join(gap["underrepresented_kinds"]) or "none", ""])
    return _md(["measure", "production", "training"], rows)


def _materialize_source(flywheel: FlywheelResource, asset: str, files: list[str], source: str,
                        generator_keys: tuple[str, ...] = ()) -> dg.MaterializeResult:
    project = flywheel.project()
    home = flywheel.home()
    load: SourceLoad = load_source_examples([project.resolve(f) for f in files], source,
                                            max_tokens=project.curation.max_tokens, generator_keys=generator_keys)
    out = home.warehouse(asset, "all")
    write_parquet(examples_table(load.examples), out)
    write_parquet(quarantine_table(load.quarantine), home.quarantine(asset, "all"))
    return dg.MaterializeResult(metadata={
        "read": load.read,
        "accepted": len(load.examples),
        "quarantined": len(load.quarantine),
        "files": _md(["file", "format", "read", "accepted", "quarantined"],
                     [[f["file"], f["format"], f["read"], f["accepted"], f["quarantined"]] for f in load.files]),
        "quarantine_reasons": _md(["reason", "rows"], [[k, v] for k, v in load.quarantine_reasons().items()]),
        "path": dg.MetadataValue.path(str(out)),
    })


@dg.asset(group_name=GROUP, kinds={"python", "parquet"})
def seed_examples(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Human-written examples from `sources.seed` (ChatML, ShareGPT or Alpaca), converted; source=human."""
    return _materialize_source(flywheel, "seed_examples", flywheel.project().sources.seed, "human")


@dg.asset(group_name=GROUP, kinds={"python", "parquet"})
def synthetic_examples(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Generator-written examples from `sources.synthetic`; every row must name its `generator`
    (a file without any is refused, single rows without one are quarantined)."""
    return _materialize_source(flywheel, "synthetic_examples", flywheel.project().sources.synthetic, "synthetic",
                               generator_keys=("generator",))


@dg.asset(group_name=GROUP, kinds={"python", "parquet"})
def distilled_examples(flywheel: FlywheelResource) -> dg.MaterializeResult:
    """A teacher model's answers to real inputs from `sources.distilled`; the teacher is named per row in
    `teacher` (or `generator`) and becomes the example's generator; source=distilled."""
    return _materialize_source(flywheel, "distilled_examples", flywheel.project().sources.distilled, "distilled",
                               generator_keys=("teacher", "generator"))


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    deps=[*SOURCE_ASSETS, dg.AssetKey("reviewed_examples"), dg.AssetKey("fixed_eval_set")],
)
def training_dataset(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Every source merged and curated (format, rubric rules, duplicates, conflicts, decontamination,
    balance, size) into `datasets/<version>/` (version = content hash), with a dataset card."""
    project = flywheel.project()
    home = flywheel.home()
    problem = rubric_problem(project)
    if problem:
        raise dg.Failure(description=f"refusing to build a training dataset: {problem}")
    files = [home.warehouse(a, "all") for a in SOURCE_ASSETS]
    files += sorted(home.warehouse("reviewed_examples").glob("*.parquet"))
    examples = read_examples(files)
    eval_items = read_eval_items(home.warehouse("fixed_eval_set", "current"))
    prod_inputs, prod_versions = recent_production_inputs(home.warehouse("interactions"))
    result = curate(examples, project.curation, eval_items, prod_versions)
    dv = write_dataset_version(
        home, result, rubric_text=rubric_text(project), rubric_path=str(project.resolve(project.rubric)),
        rubric_problem=problem, production_inputs=prod_inputs, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    batch = None
    try:
        batch = register_review_sample(flywheel.db_url(), dv, rubric_text(project), seed=project.curation.seed)
    except Exception as exc:  # the sample file is written either way; the batch is a convenience
        context.log.warning(f"review sample not registered as a batch: {exc}")
    conflict_batch = None
    try:
        conflict_batch = register_conflict_review(flywheel.db_url(), dv, rubric_text(project))
    except Exception as exc:  # conflicts.parquet is written either way; the check reports a missing batch
        context.log.warning(f"conflicts not registered as a review batch: {exc}")
    for w in dv.manifest["warnings"]:
        context.log.warning(w)
    m = dv.manifest
    return dg.MaterializeResult(metadata={
        "version": m["version"],
        "content_hash": m["content_hash"],
        "rows": m["counts"]["train"],
        "input_rows": m["counts"]["input"],
        "dropped": m["counts"]["dropped"],
        "flagged": m["counts"]["flagged"],
        "conflicts": m["counts"]["conflicts"],
        "synthetic_per_real": m["ratios"]["synthetic_per_real"],
        "steps": _md(["step", "in", "out", "dropped", "flagged", "seconds"],
                     [[s["step"], s["n_in"], s["n_out"], ", ".join(f"{k}: {v}" for k, v in s["dropped"].items()) or "-",
                       ", ".join(f"{k}: {v}" for k, v in s["flagged"].items()) or "-", s["seconds"]] for s in m["steps"]]),
        "rules": _md(["rule", "blocking", "passed", "detail"], [[r["name"], r["blocking"], r["passed"], r["message"]] for r in m["rules"]]),
        "diversity": _diversity_md(m["diversity"]),
        "diversity_changes": _md(["group", "metric", "previous", "current", "change", "warn"],
                                 [[d["group"], d["metric"], d["previous"], d["current"], d["change"], d["warn"]]
                                  for d in m["diversity_changes"]]) if m["diversity_changes"] else "no previous version",
        "production_gap": _gap_md(m["production_gap"]),
        "gap_score": m["production_gap"].get("gap_score"),
        "input_lengths": png_metadata(dv.path / m["plots"]["input_lengths"], "input length, training vs production"),
        "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in m["warnings"]) or "none"),
        "review_batch": batch or "(not registered)",
        "conflict_batch": conflict_batch or ("(already registered)" if m["counts"]["conflicts"] else "(no conflicts)"),
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
        passed=bool(rule["passed"]), description=rule["message"], metadata={"version": version},
        severity=dg.AssetCheckSeverity.ERROR if rule["blocking"] else dg.AssetCheckSeverity.WARN,
    )


@dg.asset_check(asset=training_dataset, blocking=True)
def format_consistent(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    """Every row is valid canonical ChatML and carries the configured system prompt."""
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
