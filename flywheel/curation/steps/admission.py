"""Step 0, admission: a synthetic or distilled file trains only once a person has reviewed its sample.

Every synthetic or distilled row belongs to a source file (its lineage's `file` and `file_sha256`);
the build's `ReviewInputs.admission` says, per file, whether its sample batch `admission-<stem>-<hash8>`
is complete with passes / decided >= `curation.min_sample_pass_rate` (`curation.admission`). Rows of a
pending file are dropped as `admission_pending`, of a failed one as `admission_failed` (counted per
file). In an admitted file the sample's reviewer verdicts apply row by row: a fix replaces the row's
answer (human_fixed), a reject drops the row (`admission_rejected`), a pass keeps it. Seed files
(human-written) and reviewed traffic need no admission. Without admission inputs nothing is dropped
here, and the blocking `sources_admitted` rule fails on any synthetic or distilled row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from flywheel.curation.context import (
    FAILED,
    GENERATED_SOURCES,
    CurationContext,
    FileAdmission,
    Step,
    lineage_of,
    with_fixed_answer,
)

ADMISSION_PENDING = "admission_pending"
ADMISSION_FAILED = "admission_failed"
ADMISSION_REJECTED = "admission_rejected"


def file_key(row: dict[str, Any]) -> tuple[str, str]:
    """(file, content sha256) of a source row's file; empty strings when its lineage does not say."""
    lineage = lineage_of(row)
    return str(lineage.get("file") or ""), str(lineage.get("file_sha256") or "")


def needs_admission(row: dict[str, Any]) -> bool:
    """The row comes from a synthetic or distilled file (a person's fix to it does not change that)."""
    return row.get("source") in GENERATED_SOURCES


def unadmitted_files(rows: Sequence[dict[str, Any]], admission: Mapping[tuple[str, str], FileAdmission] | None,
                     ) -> dict[tuple[str, str], int]:
    """Rows per file among `rows` that need admission but whose file is not admitted (unknown files too)."""
    out: Counter[tuple[str, str]] = Counter()
    for r in rows:
        if needs_admission(r):
            key = file_key(r)
            fa = admission.get(key) if admission is not None else None
            if fa is None or not fa.admitted:
                out[key] += 1
    return dict(out)


class AdmissionStep(Step):
    """Rows of files whose sample is not yet reviewed and passed are held out; the sample's verdicts apply."""

    name = "admission"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        admission = ctx.reviews.admission
        if admission is None:
            ctx.facts["admission_checked"] = False
            return rows
        ctx.facts["admission_checked"] = True
        for fa in admission.values():  # what this run does with each file's rows
            fa.kept = fa.held_out = fa.fixed_rows = fa.rejected_rows = 0
        kept = []
        for row in rows:
            if not needs_admission(row):
                kept.append(row)
                continue
            fa = admission.get(file_key(row))
            if fa is None:
                where = file_key(row)[0] or "unknown file"
                ctx.drop(row, self.name, ADMISSION_PENDING, f"{where}: no admission sample")
                continue
            if not fa.admitted:
                fa.held_out += 1
                ctx.drop(row, self.name, ADMISSION_FAILED if fa.status == FAILED else ADMISSION_PENDING,
                         f"{fa.name}: {fa.detail}")
                continue
            verdict = fa.verdicts.get(row["example_id"])
            if verdict is not None and verdict.verdict == "reject":
                fa.rejected_rows += 1
                why = f" ({verdict.reason})" if verdict.reason else ""
                ctx.drop(row, self.name, ADMISSION_REJECTED, f"{fa.name}: rejected in {verdict.batch_id}{why}")
                continue
            if verdict is not None and verdict.verdict == "fix" and verdict.text:
                row = with_fixed_answer(row, verdict.text, admission_batch=verdict.batch_id,
                                        reviewer=verdict.reviewer, verdict="fix")
                fa.fixed_rows += 1
            fa.kept += 1
            kept.append(row)
        return kept
