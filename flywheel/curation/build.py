"""Build the training dataset of a project: the one entry point of the `training_dataset` asset.

Reads every source table (`warehouse/{seed,synthetic,distilled}_examples/all.parquet`) and every
weekly `reviewed_examples` file, the fixed eval set (for decontamination) and the last weeks of
production inputs (for the distribution gap), and from the decision store what reviewers decided: each
synthetic / distilled file's admission (`curation.admission`; a missing sample batch is registered) and
the verdicts of every conflict batch (`review_batches.read_conflict_verdicts`). Curates, writes
`datasets/<version>/`, and registers the version's review sample and conflicts as review batches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.capture.pii.ner import TrainingTextScrubber
from flywheel.capture.records import INTERACTIONS
from flywheel.config import PiiConfig, ProjectConfig
from flywheel.core.errors import InputError
from flywheel.core.quarters import (
    newest_quarter,
    parse_quarter,
    quarter_cutoff,
    quarter_label,
    update_quarter,
)
from flywheel.core.storage import FlywheelHome
from flywheel.curation.admission import admission_plan
from flywheel.curation.context import FileAdmission, ReviewInputs
from flywheel.curation.pipeline import CurationResult, curate
from flywheel.curation.production_gap import recent_production_inputs
from flywheel.curation.review_batches import (
    read_conflict_verdicts,
    register_conflict_review,
    register_review_sample,
)
from flywheel.curation.sources import SOURCE_TABLES, read_eval_items, read_examples
from flywheel.curation.versions import DatasetVersion, write_dataset_version
from flywheel.labeling.reviewed import REVIEWED_ASSET
from flywheel.labeling.store import ReviewStore
from flywheel.project import rubric_problem, rubric_text

FIXED_EVAL_SET = ("fixed_eval_set", "current")
"""The fixed eval set's warehouse table and partition (written by the evaluation stage)."""


class CurationError(InputError):
    """Curation cannot run on these inputs (named cause), e.g. the rubric is not written yet."""


@dataclass
class TrainingDatasetBuild:
    """A built dataset version, the review batches it registered, and what went wrong registering them."""

    version: DatasetVersion
    result: CurationResult
    review_batch: str | None = None
    conflict_batch: str | None = None
    quarter: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def admission(self) -> list[FileAdmission]:
        """Each synthetic / distilled file's admission as this build applied it."""
        return list((self.result.ctx.reviews.admission or {}).values())


def scrub_dataset(result: CurationResult, pii: PiiConfig) -> None:
    """PII patterns and NER over every row entering the version and every conflict sent for review
    (seed, synthetic, distilled and fixed answers were never captured); what it did goes in the
    manifest's facts (`pii_scan`), and a missing NER model in its warnings."""
    scrubber = TrainingTextScrubber(pii)
    scrubber.scrub_rows(result.rows)
    scrubber.scrub_rows(result.ctx.conflicts, message_keys=(), text_keys=("input", "answer", "kept_answer"))
    result.ctx.facts["pii_scan"] = scrubber.scan.summary()
    if notice := scrubber.scan.notice():
        result.ctx.warnings.append(notice)


def reviewed_files(home: FlywheelHome, cutoff: dt.date | None = None) -> list[Path]:
    """The weekly `reviewed_examples` files, with `cutoff` only the weeks that ended by then."""
    files = sorted(home.warehouse(REVIEWED_ASSET).glob("*.parquet"))
    if cutoff is None:
        return files
    kept = []
    for f in files:
        try:
            monday = dt.date.fromisoformat(f.stem)
        except ValueError:
            continue
        if monday + dt.timedelta(days=7) <= cutoff:
            kept.append(f)
    return kept


def build_training_dataset(project: ProjectConfig, home: FlywheelHome, db_url: str,
                           quarter: str | None = None) -> TrainingDatasetBuild:
    """Curate every source of `project` into a new dataset version under `home` and register its review
    batches in the decision store at `db_url`. Refuses (CurationError) while the rubric is unwritten.
    Rows of synthetic / distilled files not admitted are held out; conflict verdicts are applied.

    With `quarter` (a retrain partition), only what was captured and reviewed before the quarter's end
    is read: the weeks of reviewed examples that ended by then, production inputs of earlier days and
    conflict verdicts given before it (source files and their admission are read as they are now). The
    version is recorded as the quarter's dataset; `datasets/LATEST` moves only for the newest quarter.

    A batch that cannot be registered is a warning, not a failure: the version's files
    (`review_sample.jsonl`, `conflicts.parquet`) are written either way, and the conflicts check reports
    a missing batch."""
    problem = rubric_problem(project)
    if problem:
        raise CurationError(f"refusing to build a training dataset: {problem}")
    rubric = rubric_text(project)
    quarter = parse_quarter(quarter) if quarter else None
    cutoff = quarter_cutoff(quarter) if quarter else None
    files = [home.warehouse(t, "all") for t in SOURCE_TABLES]
    files += reviewed_files(home, cutoff.date() if cutoff else None)
    eval_items = read_eval_items(home.warehouse(*FIXED_EVAL_SET))
    prod_inputs, prod_versions = recent_production_inputs(home.warehouse(INTERACTIONS),
                                                          until=cutoff.date() if cutoff else None)
    examples = read_examples(files)
    store = ReviewStore(db_url)  # unreadable decisions fail the build: nothing may train unreviewed
    verdicts, conflict_batches = read_conflict_verdicts(store, until=cutoff)
    reviews = ReviewInputs(admission_plan(store, examples, project.curation, rubric), verdicts, conflict_batches)
    result = curate(examples, project.curation, eval_items, prod_versions, reviews=reviews)
    scrub_dataset(result, project.capture.pii)
    newest = newest_quarter(home)
    dv = write_dataset_version(
        home, result, rubric_text=rubric, rubric_path=str(project.resolve(project.rubric)), rubric_problem=problem,
        production_inputs=prod_inputs, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        move_latest=quarter is None or newest is None or quarter >= newest,
    )
    build = TrainingDatasetBuild(dv, result, quarter=quarter)
    if quarter and not dv.blocking_failures:
        update_quarter(home, quarter, dataset_version=dv.version, cutoff=cutoff.isoformat() if cutoff else None,
                       reviewed_weeks=[f.stem for f in files if f.parent.name == REVIEWED_ASSET])
    elif quarter:
        build.warnings.append(f"{quarter_label(quarter)}: dataset {dv.version} fails a blocking rule; "
                              "the quarter keeps its previous dataset")
    try:
        build.review_batch = register_review_sample(db_url, dv, rubric, seed=project.curation.seed)
    except Exception as exc:  # the sample file is written either way; the batch is a convenience
        build.warnings.append(f"review sample not registered as a batch: {exc}")
    try:
        build.conflict_batch = register_conflict_review(db_url, dv, rubric)
    except Exception as exc:  # conflicts.parquet is written either way; the check reports a missing batch
        build.warnings.append(f"conflicts not registered as a review batch: {exc}")
    return build
