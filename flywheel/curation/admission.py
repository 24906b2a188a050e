"""Source admission: a synthetic or distilled file trains only after a person has reviewed a sample of it.

The guide's rule for synthetic data (a human reviews 100-200 random examples; only what passes is kept)
as a gate per source file. Each synthetic or distilled file, by its content hash, gets one review batch
`admission-<file stem>-<sha256[:8]>` in the labeling decision store: a seeded sample of
`curation.admission_sample_size` distinct rows (the whole file when smaller), built with labeling's
`review_item` (the row's example id in each item's lineage). The file is

- admitted once the batch is complete (every item decided, or closed by hand) and passes / decided >=
  `curation.min_sample_pass_rate` (a fix or a reject is not a pass);
- pending while it is not (or not registered yet);
- failed when complete below the minimum, or closed with nothing decided.

The source assets register the batches (`materialize_source`); a dataset build registers any still missing
and applies the state (`admission_plan` -> `steps.admission`); `verify_admission` is the blocking check
`sources_admitted`. Seed files are human-written and need no admission; reviewed traffic neither. A changed
file is a new file (new hash, new batch). Sample items hold no production input back from weekly review.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import CurationConfig, ProjectConfig
from flywheel.core.markdown import markdown_table
from flywheel.core.records import MAX_ID_CHARS
from flywheel.core.storage import FlywheelHome, read_table
from flywheel.curation.context import ADMITTED, FAILED, GENERATED_SOURCES, PENDING, FileAdmission, RowVerdict
from flywheel.curation.sources import (
    SOURCE_TABLES,
    SourceLoad,
    load_source_examples,
    source_files,
    write_source_examples,
)
from flywheel.curation.steps.admission import file_key, needs_admission, unadmitted_files
from flywheel.curation.versions import read_manifest
from flywheel.labeling.batches import create_sample_batch
from flywheel.labeling.decisions import resolve_decisions
from flywheel.labeling.store import ReviewStore
from flywheel.project import rubric_text

ADMISSION_KIND = "admission"
ADMISSION_PREFIX = "admission-"
ADMISSION_TABLES = tuple(t for t, spec in SOURCE_TABLES.items() if spec.source in GENERATED_SOURCES)
"""The source tables whose files need admission (synthetic_examples, distilled_examples)."""


def admission_batch_id(file: str, sha256: str) -> str:
    """`admission-<file stem>-<sha256[:8]>` (the stem reduced to letters, digits, `._-`)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(file).stem).strip("-.") or "file"
    room = MAX_ID_CHARS - len(ADMISSION_PREFIX) - 9
    return f"{ADMISSION_PREFIX}{stem[:room]}-{sha256[:8]}"


def files_of(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The rows that need admission, grouped by (file, content sha256), in row order."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if needs_admission(r):
            out.setdefault(file_key(r), []).append(r)
    return out


def create_admission_batch(store: ReviewStore, batch_id: str, rows: Sequence[dict[str, Any]], *, n: int, seed: int,
                           rubric: str = "", source: str | None = None,
                           meta: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Register a seeded sample of `n` distinct rows (all when fewer) of one source file as batch `batch_id`
    (labeling's sample batch, kind `admission`, without input keys: a generated row under review holds no
    production input back). Items show the row's prompt and answer; item_id = the row's example id."""
    return create_sample_batch(store, batch_id, rows, n=n, seed=seed, rubric=rubric, source=source,
                               kind=ADMISSION_KIND, hold_inputs=False, meta=meta)


def read_file_admission(store: ReviewStore, file: str, sha256: str, rows: Sequence[dict[str, Any]],
                        min_pass_rate: float) -> FileAdmission:
    """The admission of one file from its sample batch's decisions (reads only)."""
    fa = FileAdmission(file=file, sha256=sha256, source=str(rows[0].get("source") if rows else ""),
                       batch_id=admission_batch_id(file, sha256) if sha256 else "", rows=len(rows),
                       generators=sorted({str(r["generator"]) for r in rows if r.get("generator")}))
    if not sha256:
        fa.detail = "rows carry no file hash (read before admission existed): materialize the source again"
        return fa
    if not store.has_batch(fa.batch_id):
        fa.detail = f"sample not registered yet: materialize the source asset (batch {fa.batch_id})"
        return fa
    progress = store.progress(fa.batch_id)
    items = store.items(fa.batch_id)
    resolved = resolve_decisions(store.decisions(fa.batch_id))
    fa.items = len(items)
    for it in items:
        r = resolved.get(it["item_id"])
        if r is None:
            continue
        fa.decided += 1
        fa.passed += r.verdict == "pass"
        fa.fixed += r.verdict == "fix"
        fa.rejected += r.verdict == "reject"
        fa.verdicts[it["item_id"]] = RowVerdict(fa.batch_id, r.verdict, r.text, r.reason, r.reviewer)
    rate = fa.pass_rate
    if not progress.complete:
        fa.status = PENDING
        fa.detail = f"{fa.decided} of {fa.items} sample rows decided in review batch {fa.batch_id}"
    elif rate is None:
        fa.status, fa.detail = FAILED, f"batch {fa.batch_id} closed with no decision"
    elif rate >= min_pass_rate:
        fa.status, fa.detail = ADMITTED, f"{fa.passed} of {fa.decided} passed ({rate:.0%} >= {min_pass_rate:.0%})"
    else:
        fa.status, fa.detail = FAILED, f"{fa.passed} of {fa.decided} passed ({rate:.0%} < {min_pass_rate:.0%})"
    return fa


def admission_plan(store: ReviewStore, rows: Sequence[dict[str, Any]], config: CurationConfig, rubric: str = "",
                   register: bool = True) -> dict[tuple[str, str], FileAdmission]:
    """Per (file, sha256) of the synthetic / distilled rows among `rows`: its admission, registering each
    missing sample batch first when `register`."""
    plan = {}
    for (file, sha), group in files_of(rows).items():
        if register and sha and not store.has_batch(bid := admission_batch_id(file, sha)):
            create_admission_batch(store, bid, group, n=config.admission_sample_size, seed=config.seed,
                                   rubric=rubric, source=file, meta={"file": file, "sha256": sha})
        plan[(file, sha)] = read_file_admission(store, file, sha, group, config.min_sample_pass_rate)
    return plan


def _project_rows(project: ProjectConfig, tables: Sequence[str], home: FlywheelHome | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for table in tables:
        spec = SOURCE_TABLES[table]
        rows += load_source_examples(source_files(project, spec, home), spec.source, max_tokens=project.curation.max_tokens,
                                     generator_keys=spec.generator_keys).examples
    return rows


def register_admission_samples(project: ProjectConfig, db_url: str, tables: Sequence[str] = ADMISSION_TABLES,
                               home: FlywheelHome | None = None) -> list[FileAdmission]:
    """Register the admission sample of every synthetic / distilled file the project lists (and, with `home`,
    every generation run's file; read from the files themselves) that has none yet; returns each file's admission."""
    rows = _project_rows(project, tables, home)
    return list(admission_plan(ReviewStore(db_url), rows, project.curation, rubric_text(project)).values())


def admission_batches(project: ProjectConfig, db_url: str, home: FlywheelHome | None = None) -> list[FileAdmission]:
    """Each synthetic / distilled file the project lists (with `home`, generation runs' files too) and its
    admission (registers nothing): e.g. the batch ids still to review are
    `[a.batch_id for a in admission_batches(...) if a.status == "pending"]`."""
    rows = _project_rows(project, ADMISSION_TABLES, home)
    return list(admission_plan(ReviewStore(db_url), rows, project.curation, register=False).values())


@dataclass
class SourceMaterialization:
    """A source table written (`sources.write_source_examples`) and its files' admission."""

    load: SourceLoad
    path: Path
    admission: list[FileAdmission] = field(default_factory=list)

    @property
    def pending_batches(self) -> list[str]:
        return [a.batch_id for a in self.admission if a.status == PENDING and a.batch_id]


def materialize_source(project: ProjectConfig, home: FlywheelHome, db_url: str,
                       table: str) -> SourceMaterialization:
    """Write source table `table` and, for a synthetic or distilled table, register each file's admission
    sample (once per file content) and report its state: the one call of a source asset."""
    load, path = write_source_examples(project, home, table)
    out = SourceMaterialization(load, path)
    if table in ADMISSION_TABLES:
        out.admission = list(admission_plan(ReviewStore(db_url), load.examples, project.curation,
                                            rubric_text(project)).values())
    return out


def admission_markdown(admission: Sequence[FileAdmission]) -> str:
    """The per-file table of a source asset's metadata: rows, batch, state, decided, pass rate."""
    return markdown_table(
        ["file", "rows", "batch", "state", "decided", "pass rate", "detail"],
        [[a.name, a.rows, a.batch_id or "-", a.status, f"{a.decided} of {a.items}",
          "-" if a.pass_rate is None else f"{a.pass_rate:.0%}", a.detail] for a in admission])


@dataclass
class AdmissionCheck:
    """The `sources_admitted` check of a dataset version: passed, the description, per-file rows."""

    passed: bool
    message: str
    files: list[dict[str, Any]] = field(default_factory=list)


def verify_admission(project: ProjectConfig, home: FlywheelHome, db_url: str, version: str) -> AdmissionCheck:
    """No row of a synthetic or distilled file that is not admitted NOW (decisions read again from the store)
    is in dataset `version`; names every file the version held out and why."""
    manifest = read_manifest(home, version)
    if manifest is None:
        return AdmissionCheck(False, f"dataset {version} has no manifest")
    rows = read_table(home.dataset(version) / "train.parquet").to_pylist()
    store = ReviewStore(db_url)
    groups = files_of(rows)
    now = {key: read_file_admission(store, key[0], key[1], group, project.curation.min_sample_pass_rate)
           for key, group in groups.items()}
    bad = unadmitted_files(rows, now)
    held = [a for a in manifest.get("admission") or [] if a["status"] != ADMITTED]
    held_text = "; ".join(f"{a['name']} held out ({a['status']}: {a['detail']})" for a in held)
    files = [{"file": fa.name, "rows in version": len(groups[k]), "status now": fa.status, "detail": fa.detail}
             for k, fa in now.items()]
    files += [{"file": a["name"], "rows in version": 0, "status now": "held out", "detail": a["detail"]}
              for a in held]
    if bad:
        names = "; ".join(f"{now[k].name} ({n} rows; {now[k].status}: {now[k].detail})" for k, n in bad.items())
        return AdmissionCheck(False, f"dataset {version} holds rows of files not admitted: {names}", files)
    names = ", ".join(fa.name for fa in now.values())
    admitted = (f"every synthetic/distilled row comes from an admitted file ({names})" if now
                else f"no synthetic or distilled rows in dataset {version}")
    return AdmissionCheck(True, admitted + (f"; {held_text}" if held else ""), files)
