"""The preference pairs asset (curation group): (prompt, chosen, rejected) from reviewers' fixes, users'
corrections and accepted resubmissions, versioned beside the newest training dataset version. The
optional DPO stage of `lora_adapter` trains on them (`training.dpo`)."""

import dagster as dg

from assets.partitions import quarterly_partitions
from assets.resources import FlywheelResource
from flywheel.core.errors import StateError
from flywheel.core.markdown import markdown_table
from flywheel.core.quarters import quarter_label, read_quarter
from flywheel.curation.preference_pairs import ORIGINS, build_preference_pairs


@dg.asset(group_name="curation", kinds={"python", "parquet"}, deps=["training_dataset", "fixed_eval_set"],
          partitions_def=quarterly_partitions)
def preference_pairs(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Every correction (a reviewer's fix, a user's correction) and every resubmission whose second answer
    was accepted, as a preference pair with lineage to its interactions; deduplicated and decontaminated
    against the fixed eval set like the SFT rows; each dropped pair keeps its reason (read = accepted +
    dropped). Written to `datasets/<version>/preference_pairs.parquet` of the quarter's dataset version (the
    pairs themselves are read from everything captured and reviewed so far, not cut at the quarter's end)."""
    home, quarter = flywheel.home(), context.partition_key
    version = read_quarter(home, quarter).get("dataset_version")
    if not version:
        raise dg.Failure(description=f"{quarter_label(quarter)}: no dataset version for this quarter; "
                                     "materialize training_dataset for it first")
    try:
        built = build_preference_pairs(flywheel.project(), home, flywheel.db_url(), version=str(version))
    except StateError as exc:
        raise dg.Failure(description=str(exc)) from exc
    s = built.summary
    return dg.MaterializeResult(metadata={
        "dataset_version": built.version,
        "quarter": quarter_label(quarter),
        "read": s["read"],
        "accepted": s["accepted"],
        "dropped": s["dropped"],
        "by_origin": dg.MetadataValue.md(markdown_table(
            ["origin", "read", "accepted", "dropped"],
            [[o, s["by_origin"][o]["read"], s["by_origin"][o]["accepted"], s["by_origin"][o]["dropped"]] for o in ORIGINS])),
        "drops_by_reason": dg.MetadataValue.md(markdown_table(["reason", "pairs"], list(s["drops_by_reason"].items()))),
        "content_hash": s["content_hash"],
        "path": dg.MetadataValue.path(str(built.path)),
    })
