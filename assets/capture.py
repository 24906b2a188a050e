"""Capture assets: a day's landing files -> validated, PII-redacted interactions -> one signal each."""


import dagster as dg

from assets.materializations import latest_partition_metadata
from assets.partitions import daily_partitions
from assets.resources import FlywheelResource
from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import capture_inputs, inputs_fingerprint, recover_orphans
from flywheel.capture.records import INTERACTIONS, next_day
from flywheel.capture.retention import apply_retention, capture_pending, past_retention
from flywheel.capture.signals import SIGNAL_KINDS, SIGNALS, compute_signals
from flywheel.core.storage import StoragePath, parquet_file


def _count_table(title: str, counts: dict[str, int], total: int | None = None) -> str:
    lines = [f"| {title} | rows |" + (" share |" if total else ""), "|---|---:|" + ("---:|" if total else "")]
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| {key} | {n} |" + (f" {n / total:.1%} |" if total else ""))
    return "\n".join(lines) if counts else f"no {title.lower()}"


@dg.asset(
    partitions_def=daily_partitions,
    group_name="capture",
    kinds={"python", "parquet"},
)
def interactions(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The day's captured interactions: each landing row validated, PII redacted, duplicate ids
    dropped; bad rows (also rows timestamped on another day) go to `quarantine/interactions/<day>.parquet`
    with their reason. Landing files a killed writer left (`.tmp`) in the folders this day's capture
    reads are published first."""
    day = context.partition_key
    home = flywheel.home()
    config = flywheel.project().capture
    orphans = recover_orphans(home, config.orphan_tmp_after_s, [day, next_day(day)])
    if orphans.recovered or orphans.removed_empty:
        context.log.warning(f"{day}: {orphans.summary()}: {[p.name for p in orphans.recovered]}")
    report = ingest_interactions(home, day, config)
    context.log.info(
        f"{day}: read {report.rows_read} rows from {report.files} files, accepted {report.rows_accepted}, "
        f"quarantined {report.rows_quarantined} {dict(report.quarantine_reasons)}"
    )
    return dg.MaterializeResult(
        metadata={
            "files": report.files,
            "rows_read": report.rows_read,
            "rows_accepted": report.rows_accepted,
            "rows_quarantined": report.rows_quarantined,
            "quarantine_rate": dg.MetadataValue.float(report.quarantine_rate),
            "quarantine_reasons": dg.MetadataValue.json(dict(report.quarantine_reasons)),
            "pii_hits": dg.MetadataValue.json({k: report.pii_hits.get(k, 0) for k in flywheel.project().capture.pii.kinds}),
            "rows_ts_outside_day": report.quarantine_reasons.get("ts_outside_partition_day", 0),
            "orphan_files_recovered": len(orphans.recovered),
            "orphan_lines_recovered": orphans.lines,
            "blank_lines_skipped": report.blank_lines,
            "bytes_read": report.bytes_read,
            "summary": dg.MetadataValue.md(
                _count_table("Quarantine reason", dict(report.quarantine_reasons), report.rows_read)
                + "\n\n"
                + _count_table("PII kind", dict(report.pii_hits))
            ),
            "path": dg.MetadataValue.path(str(home.warehouse(INTERACTIONS, day))),
            "quarantine_path": dg.MetadataValue.path(str(home.quarantine(INTERACTIONS, day))),
        }
    )


@dg.asset_check(
    asset=interactions,
    blocking=True,
    description="rows read = rows in the warehouse file + rows in the quarantine file (counted on disk)",
)
def interactions_rows_conserved(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    meta = _latest_metadata(context, interactions.key)
    read = meta.get("rows_read")
    partition = _run_partition(context)
    home = flywheel.home()
    if partition is None:  # no single partition to open: the counts the asset reported
        accepted, quarantined = meta.get("rows_accepted"), meta.get("rows_quarantined")
    else:
        accepted = _parquet_rows(home.warehouse(INTERACTIONS, partition))
        quarantined = _parquet_rows(home.quarantine(INTERACTIONS, partition))
    passed = read is not None and accepted is not None and quarantined is not None and read == accepted + quarantined
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"partition": partition or "", "rows_read": read, "rows_in_warehouse": accepted,
                  "rows_in_quarantine": quarantined},
        description=None if passed else f"read {read} rows but the files hold {accepted} accepted + {quarantined} quarantined",
    )


def _parquet_rows(path: StoragePath) -> int | None:
    """Rows of a Parquet file from its footer, None when it is missing."""
    return parquet_file(path).metadata.num_rows if path.exists() else None


@dg.asset_check(asset=interactions, description="the share of quarantined rows stays under capture.quarantine_rate_warn")
def interactions_quarantine_rate(context: dg.AssetCheckExecutionContext, flywheel: FlywheelResource) -> dg.AssetCheckResult:
    meta = _latest_metadata(context, interactions.key)
    rate = float(meta.get("quarantine_rate") or 0.0)
    limit = flywheel.project().capture.quarantine_rate_warn
    return dg.AssetCheckResult(
        passed=rate <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantine_rate": rate, "limit": limit, "reasons": dg.MetadataValue.json(meta.get("quarantine_reasons") or {})},
        description=None if rate <= limit else f"{rate:.1%} of rows quarantined (warn above {limit:.1%})",
    )


def _run_partition(context: dg.AssetCheckExecutionContext) -> str | None:
    return context.run.tags.get("dagster/partition") if context.run else None


def _latest_metadata(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dict:
    """The metadata values of the asset's materialization in this run (its partition)."""
    return latest_partition_metadata(context.instance, key, _run_partition(context))


@dg.asset(
    partitions_def=daily_partitions,
    group_name="capture",
    kinds={"duckdb", "parquet"},
    deps=[interactions],
)
def interaction_signals(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """One signal per interaction of the day (correction > negative > positive > none) with its weight,
    from feedback events (that day's and the next day's folder) and resubmissions in the session. Then
    the landing files past `capture.retention_days` whose days are captured are deleted."""
    day = context.partition_key
    home = flywheel.home()
    config = flywheel.project().capture
    fingerprint = inputs_fingerprint(home, capture_inputs(home, day))
    report = compute_signals(home, day, config)
    retention = apply_retention(home, config)
    if retention.deleted_days:
        context.log.info(f"retention: deleted the landing files of {retention.deleted_days}")
    total = report.interactions
    return dg.MaterializeResult(
        metadata={
            "input_fingerprint": fingerprint,  # the landing sensor skips a day whose inputs were captured
            "interactions": total,
            **{f"signal_{k}": report.signals.get(k, 0) for k in SIGNAL_KINDS},
            "negative_rate": dg.MetadataValue.float(report.signals.get("negative", 0) / total if total else 0.0),
            "feedback_read": report.feedback_read,  # = feedback_matched + feedback_quarantined
            "feedback_matched": report.feedback_matched,
            "feedback_previous_day": report.feedback_previous_day,
            "feedback_quarantined": report.feedback_quarantined,
            "feedback_reasons": dg.MetadataValue.json(dict(report.feedback_reasons)),
            "feedback_late": report.feedback_late,
            "resubmit_candidate_pairs": report.candidate_pairs,
            "resubmissions": report.resubmissions,
            "resubmissions_across_midnight": report.resubmissions_across_midnight,
            "summary": dg.MetadataValue.md(_count_table("Signal", dict(report.signals), total)),
            "path": dg.MetadataValue.path(str(home.warehouse(SIGNALS, day))),
            "retention_cutoff": retention.cutoff or "off",
            "landing_days_deleted": len(retention.deleted_days),
            "landing_files_deleted": retention.deleted_files,
        }
    )


@dg.asset_check(
    asset=interaction_signals,
    description="no landing file (raw user ids) is older than capture.retention_days: each day past it is "
    "deleted once captured; the days still there are listed with the reason",
)
def landing_retention(flywheel: FlywheelResource) -> dg.AssetCheckResult:
    home, config = flywheel.home(), flywheel.project().capture
    left = past_retention(home, config)
    reasons = {day: capture_pending(home, day, files) or "deleted at the next capture" for day, files in left.items()}
    return dg.AssetCheckResult(
        passed=not left,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"retention_days": config.retention_days if config.retention_days is not None else "off",
                  "days_past_retention": len(left), "files_past_retention": sum(len(f) for f in left.values()),
                  "bytes_past_retention": sum(p.stat().st_size for f in left.values() for p in f),
                  "days": dg.MetadataValue.json(reasons)},
        description=None if not left else f"{len(left)} landing day(s) past retention: {dict(list(reasons.items())[:5])}",
    )
