"""Ingestion: a day's landing interactions -> the warehouse (accepted) and quarantine (rejected) tables.

`ingest_interactions` streams a day's files line by line in bounded batches: each line is decoded,
parsed and validated (`flywheel.capture.validation`; a failing row goes to quarantine with its
reason, a row timestamped on another day too), PII is redacted (`flywheel.capture.pii`), repeated
interaction ids are quarantined as `duplicate_id`, and accepted rows are written to
`warehouse/interactions/<day>.parquet`. No row can stop the run: whatever exception a row provokes
in decoding, validation, redaction or conversion quarantines that row (`unexpected:<Type>` for the
unforeseen). User and session ids are pseudonymised as rows are validated (`capture.pseudonymize`).
Rows read = rows accepted + rows quarantined.
A big day (>= `PARALLEL_MIN_BYTES`) is validated and redacted by up to 2 worker processes, a piece
of a file each (`flywheel.capture.workers`); this process then removes duplicates and writes in file
and line order, so the tables are the same as with one process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from flywheel.capture.landing import iter_landing_lines, landing_files, lines_at
from flywheel.capture.pii import PiiRedactor
from flywheel.capture.records import INTERACTIONS, RowError
from flywheel.capture.tables import INTERACTIONS_SCHEMA, IngestReport, QuarantineSink, RowBatch
from flywheel.capture.validation import (
    checked_row,
    cyclic_gc_paused,
    duplicate_detail,
    rejected_row,
    row_rules,
)
from flywheel.capture.workers import ingest_in_pool
from flywheel.config import CaptureConfig
from flywheel.core.errors import StateError
from flywheel.core.storage import FlywheelHome, atomic_path

PARALLEL_MIN_BYTES = 16 << 20  # smaller days are ingested in-process: starting the pool costs ~1 s
PIECE_BYTES = 32 << 20  # landing files bigger than this are split at line ends into pieces this big


def ingest_interactions(
    home: FlywheelHome,
    day: str,
    config: CaptureConfig,
    *,
    files: Sequence[Path] | None = None,
    batch_rows: int = 20_000,
    batch_chars: int = 32 << 20,
    workers: int | None = None,
    piece_bytes: int = PIECE_BYTES,
) -> IngestReport:
    """Validate, redact and deduplicate one day's landing interactions into the warehouse.

    Writes `warehouse/interactions/<day>.parquet` (INTERACTIONS_SCHEMA) and
    `quarantine/interactions/<day>.parquet` (QUARANTINE_SCHEMA), each atomically, replacing earlier
    runs. Memory stays bounded: rows go through in batches of `batch_rows` / `batch_chars`.

    `workers` processes validate and redact pieces of the files (whole files, or `piece_bytes`
    ranges of bigger ones) at once; this process deduplicates and writes, in file and line order,
    so the tables are the same for any number of workers. By default (`None`): `ingest_workers()`
    when the day's files hold at least `PARALLEL_MIN_BYTES`, else 1 (no pool). Workers are started
    with 'spawn' (a fresh interpreter: safe in threaded hosts such as a Dagster run), so a script
    calling this needs the usual `if __name__ == '__main__':` guard.
    """
    files = list(landing_files(home, INTERACTIONS, day) if files is None else files)
    if workers is None:
        workers = ingest_workers() if sum(p.stat().st_size for p in files) >= PARALLEL_MIN_BYTES else 1
    if workers > 1 and getattr(multiprocessing.current_process(), "_inheriting", False):
        raise StateError(
            "ingest_interactions ran while a worker process was importing the main module: call it under "
            "`if __name__ == '__main__':` (workers are started with 'spawn'), or pass workers=1"
        )
    with cyclic_gc_paused():
        if workers > 1:
            return ingest_in_pool(home, day, config, files, workers, batch_rows, batch_chars, piece_bytes)
        return _ingest_in_process(home, day, config, files, batch_rows, batch_chars)


def ingest_workers() -> int:
    """Worker processes for a big day: the CPUs this process may use, at most 2."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def _ingest_in_process(
    home: FlywheelHome, day: str, config: CaptureConfig, files: list[Path], batch_rows: int, batch_chars: int
) -> IngestReport:
    report = IngestReport(day=day, files=len(files))
    redactor = PiiRedactor.from_config(config.pii)
    rules = row_rules(day, config)
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}  # interaction_id -> file_index << 32 | line of its first row
    with (
        atomic_path(home.warehouse(INTERACTIONS, day)) as out_tmp,
        atomic_path(home.quarantine(INTERACTIONS, day)) as q_tmp,
    ):
        quarantine = QuarantineSink(q_tmp)
        writer = pq.ParquetWriter(out_tmp, INTERACTIONS_SCHEMA, compression="zstd")
        batch, where = RowBatch(), []  # where: (file number, line) of each row of the batch

        def write() -> None:
            converted, failed = batch.convert(redactor)
            if failed:  # never for a validated row, unless something unforeseen: read its line again
                errors = {where[i]: exc for i, exc in failed}
                for item in lines_at(files, set(errors)):
                    quarantine.add(*rejected_row(item, errors[item.file_index, item.line], rules.pseudonyms))
            writer.write_batch(converted)
            report.rows_accepted += converted.num_rows

        for item in iter_landing_lines(files, counts):
            report.rows_read += 1
            try:
                row = checked_row(item, rules)
                iid = row[0]
                if iid in first_seen:
                    raise RowError("duplicate_id", duplicate_detail(iid, files, first_seen[iid]))
            except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
                quarantine.add(*rejected_row(item, exc, rules.pseudonyms))
                continue
            first_seen[iid] = item.file_index << 32 | item.line
            batch.add(row, len(item.raw))
            where.append((item.file_index, item.line))
            if len(batch) >= batch_rows or batch.chars >= batch_chars:
                write()
                batch, where = RowBatch(), []
        if len(batch):
            write()
        writer.close()
        quarantine.close()
    report.rows_quarantined = sum(quarantine.reasons.values())
    report.quarantine_reasons = quarantine.reasons
    report.pii_hits = redactor.hits if redactor is not None else Counter()
    report.blank_lines = counts["blank_lines"]
    report.bytes_read = counts["bytes_read"]
    return report
