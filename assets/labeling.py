"""labeling assets: the weekly review batch, and the reviewed examples that come back from it."""


import dagster as dg

from assets.partitions import weekly_partitions
from assets.resources import FlywheelResource
from flywheel.capture.pii import TrainingTextScrubber
from flywheel.core.markdown import markdown_table
from flywheel.core.records import examples_table
from flywheel.core.storage import write_parquet
from flywheel.labeling.agreement import review_stats
from flywheel.labeling.batches import BATCH_ASSET, register_selection, scrub_items, write_batch_files
from flywheel.labeling.candidates import KINDS, load_week_candidates
from flywheel.labeling.reviewed import REVIEWED_ASSET, build_reviewed_examples
from flywheel.labeling.selection import select_batch
from flywheel.labeling.store import ReviewStore
from flywheel.project import rubric_problem, rubric_text

_DAILY_TO_WEEKLY = dg.TimeWindowPartitionMapping()


def _selection_table(meta: dict[str, dict[str, int]]) -> str:
    cols = ("candidates", "already_reviewed", "collapsed", "quota", "selected", "dropped_by_cap")
    header = ["kind", *(c.replace("_", " ") for c in cols)]
    return markdown_table(header, [[k, *(meta[c].get(k, 0) for c in cols)] for k in KINDS])


@dg.asset(
    partitions_def=weekly_partitions,
    group_name="labeling",
    kinds={"duckdb", "parquet", "sql"},
    deps=[
        dg.AssetDep(dg.AssetKey("interactions"), partition_mapping=_DAILY_TO_WEEKLY),
        dg.AssetDep(dg.AssetKey("interaction_signals"), partition_mapping=_DAILY_TO_WEEKLY),
    ],
)
def labeling_batch(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The week's review batch: user corrections, negative signals, low-confidence outputs and a seeded
    control sample, near-duplicates collapsed, earlier-reviewed items left out, capped with quotas.
    Registered in the decision store; review it with `flywheel review --batch <week>`."""
    week = context.partition_key
    project, home = flywheel.project(), flywheel.home()
    store = ReviewStore(flywheel.db_url())
    rows, read_counts = load_week_candidates(home, week)
    reviewed_ids, reviewed_inputs = store.reviewed_keys(exclude_batch=week)
    rubric = rubric_text(project)
    selection = select_batch(
        week, rows, project.labeling, rubric=rubric, weights=project.capture.signal_weights,
        reviewed_ids=reviewed_ids, reviewed_inputs=reviewed_inputs,
    )
    pii_scan = scrub_items(selection.items, project.capture.pii)  # patterns and NER before a person sees them
    registered = register_selection(store, selection, rubric)
    if not registered:
        context.log.warning(f"batch {week} already has review decisions; kept the stored batch unchanged")
    parquet, jsonl = write_batch_files(home, week, selection.items)
    meta = selection.metadata()
    problem = rubric_problem(project)
    return dg.MaterializeResult(
        metadata={
            "items_selected": len(selection.items),
            "items_dropped_by_cap": sum(selection.dropped_by_cap.values()),
            "candidates": sum(selection.candidates.values()),
            **{f"candidates_{k}": v for k, v in selection.candidates.items()},
            **{f"selected_{k}": v for k, v in selection.selected.items()},
            "interactions_read": read_counts["interactions"],
            "duplicate_id_rows": selection.duplicate_id_rows,  # an id captured twice: its latest row is the item
            "unusable_id_rows": selection.unusable_id_rows,  # ids the decision store cannot hold, left out
            "days_with_interactions": read_counts["days_with_interactions"],
            "selection": dg.MetadataValue.md(_selection_table(meta)),
            "kept_existing_batch": not registered,
            "pii_ner": pii_scan["ner"],  # False: names and addresses were checked by patterns only
            "pii_scan": dg.MetadataValue.json(pii_scan),
            "rubric_problem": problem or "none",
            "path": dg.MetadataValue.path(str(parquet)),
            "jsonl": dg.MetadataValue.path(str(jsonl)),
            "review_command": f"flywheel review --batch {week}",
        }
    )


@dg.asset(
    partitions_def=weekly_partitions,
    group_name="labeling",
    kinds={"parquet", "sql"},
    deps=[labeling_batch],
    check_specs=[
        dg.AssetCheckSpec("reviewer_agreement", asset=REVIEWED_ASSET,
                          description="Cohen's kappa on items reviewed by two people"),
        dg.AssetCheckSpec("fix_and_reject_rates", asset=REVIEWED_ASSET,
                          description="warn when the fix or reject rate is unusually high"),
    ],
)
def reviewed_examples(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Training examples (source=real) from the week's review decisions: pass keeps the model's answer,
    fix uses the reviewer's edit (human_fixed), reject drops the item (its reason stays in the store).
    Reviewers who disagree: the most cautious verdict wins (reject > fix > pass), then the latest."""
    week = context.partition_key
    cfg = flywheel.project().labeling
    scrubber = TrainingTextScrubber(flywheel.project().capture.pii)  # reviewers' fixed answers
    store = ReviewStore(flywheel.db_url())
    if not store.has_batch(week):
        raise dg.Failure(f"no review batch {week!r} in the decision store; materialize {BATCH_ASSET} for {week} first")
    progress = store.progress(week)  # read first: the completion key names the decisions used below
    items, decisions = store.items(week), store.decisions(week)
    rows, counts = build_reviewed_examples(week, items, decisions, scrubber)
    path = write_parquet(examples_table(rows), flywheel.home().warehouse(REVIEWED_ASSET, week))
    stats = review_stats(items, decisions)
    kappa_ok = stats.kappa is None or stats.kappa >= cfg.agreement_kappa_warn
    too_few = stats.decided < cfg.rate_warn_min_decided
    rates_ok = too_few or (stats.fix_rate <= cfg.fix_rate_warn and stats.reject_rate <= cfg.reject_rate_warn)
    rates_text = (f"only {stats.decided} items decided (rates are judged from {cfg.rate_warn_min_decided})" if too_few
                  else f"fix rate {stats.fix_rate:.0%} (warn above {cfg.fix_rate_warn:.0%}), reject rate "
                       f"{stats.reject_rate:.0%} (warn above {cfg.reject_rate_warn:.0%}): high rates mean the model "
                       "or the batch selection is off")
    checks = [
        dg.AssetCheckResult(
            check_name="reviewer_agreement", passed=kappa_ok, severity=dg.AssetCheckSeverity.WARN,
            description=("fewer than one item reviewed twice" if stats.kappa is None
                         else f"kappa {stats.kappa:.2f} on {stats.double_reviewed} items"),
            metadata={"double_reviewed": stats.double_reviewed, "kappa": stats.kappa,
                      "observed_agreement": stats.agreement, "kappa_warn_below": cfg.agreement_kappa_warn,
                      "conflicts": stats.conflicts},
        ),
        dg.AssetCheckResult(
            check_name="fix_and_reject_rates", passed=rates_ok, severity=dg.AssetCheckSeverity.WARN,
            description=rates_text,
            metadata={"fix_rate": stats.fix_rate, "reject_rate": stats.reject_rate,
                      "fix_rate_warn": cfg.fix_rate_warn, "reject_rate_warn": cfg.reject_rate_warn,
                      "decided": stats.decided},
        ),
    ]
    return dg.MaterializeResult(
        metadata={
            **counts,
            "fix_text_pii_scan": dg.MetadataValue.json(scrubber.scan.summary()),
            "batch_state": progress.state,
            "completion_key": progress.completion_key,  # review_complete_sensor skips what is already built
            "reviewers": len({d.reviewer for d in decisions}),
            "fix_rate": stats.fix_rate,
            "reject_rate": stats.reject_rate,
            "kappa": stats.kappa,
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=checks,
    )
