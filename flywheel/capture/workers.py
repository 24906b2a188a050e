"""Ingestion of a big day in worker processes: pieces of the landing files are validated and
redacted by a 'spawn' process pool, a few pieces ahead; this process removes duplicates and writes
in file and line order, so the tables are the same as with one process."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flywheel.capture.landing import LandingLine, Piece, split_landing_files
from flywheel.capture.pii import PiiRedactor
from flywheel.capture.records import INTERACTIONS
from flywheel.capture.tables import (
    INTERACTIONS_SCHEMA,
    IngestReport,
    QuarantineSink,
    RowBatch,
    quarantine_rows_table,
)
from flywheel.capture.validation import (
    QuarantineRow,
    RowRules,
    checked_row,
    cyclic_gc_paused,
    duplicate_detail,
    quarantine_row,
    rejected_row,
    row_rules,
)
from flywheel.config import CaptureConfig, PiiConfig
from flywheel.core.records import QUARANTINE_SCHEMA
from flywheel.core.storage import FlywheelHome, atomic_path

_LINE = "_line"
_PART_SCHEMA = INTERACTIONS_SCHEMA.append(pa.field(_LINE, pa.int64()))


@dataclass(frozen=True)
class _PieceJob:
    piece: Piece
    part_dir: str
    seq: int
    rules: RowRules
    pii: PiiConfig | None  # capture.pii; None: redaction off
    batch_rows: int
    batch_chars: int


@dataclass
class _PieceResult:
    accepted: str  # Arrow IPC file: redacted accepted rows (_PART_SCHEMA), duplicates not yet removed
    quarantined: str  # Arrow IPC file (QUARANTINE_SCHEMA)
    rows_read: int
    counts: Counter[str]
    pii_hits: Counter[str]


# --- in a worker -----------------------------------------------------------------------------------
def _validate_piece(job: _PieceJob) -> _PieceResult:
    """In a worker: validate and redact one piece into Arrow IPC parts (duplicates are left to the parent).
    As in one process, whatever exception a row provokes quarantines that row."""
    with cyclic_gc_paused():
        redactor = PiiRedactor.from_config(job.pii) if job.pii is not None else None
        counts: Counter[str] = Counter()
        rejected: list[QuarantineRow] = []
        rows_read = 0
        accepted = os.path.join(job.part_dir, f"{job.seq:06d}.accepted.arrow")
        with pa.OSFile(accepted, "wb") as sink, pa.ipc.new_file(sink, _PART_SCHEMA) as writer:
            batch, lines = RowBatch(), []

            def write() -> None:
                converted, failed = batch.convert(redactor)
                kept = lines
                if failed:  # never for a validated row, unless something unforeseen: read its line again
                    errors = {lines[i]: exc for i, exc in failed}
                    rejected.extend(
                        rejected_row(item, errors[item.line], job.rules.pseudonyms)
                        for item in job.piece.lines(Counter())
                        if item.line in errors
                    )
                    kept = [line for line in lines if line not in errors]
                writer.write_batch(_with_lines(converted, kept))

            for item in job.piece.lines(counts):
                rows_read += 1
                try:
                    row = checked_row(item, job.rules)
                except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
                    rejected.append(rejected_row(item, exc, job.rules.pseudonyms))
                    continue
                batch.add(row, len(item.raw))
                lines.append(item.line)
                if len(batch) >= job.batch_rows or batch.chars >= job.batch_chars:
                    write()
                    batch, lines = RowBatch(), []
            if len(batch):
                write()
        rejected.sort(key=lambda r: r[1])  # line order, also for rows that failed in conversion
        quarantined = os.path.join(job.part_dir, f"{job.seq:06d}.quarantined.arrow")
        with pa.OSFile(quarantined, "wb") as sink, pa.ipc.new_file(sink, QUARANTINE_SCHEMA) as writer:
            writer.write_table(quarantine_rows_table(rejected))
    return _PieceResult(
        accepted, quarantined, rows_read, counts, redactor.hits if redactor is not None else Counter()
    )


def _with_lines(batch: pa.RecordBatch, lines: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([*batch.columns, pa.array(lines, pa.int64())], schema=_PART_SCHEMA)


def _read_part(path: str) -> pa.Table:
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


# --- in this process -------------------------------------------------------------------------------
def ingest_in_pool(
    home: FlywheelHome, day: str, config: CaptureConfig, files: list[Path], workers: int,
    batch_rows: int, batch_chars: int, piece_bytes: int,
) -> IngestReport:  # fmt: skip
    """The in-process ingestion (`flywheel.capture.ingestion`) with the validation and redaction done by
    `workers` processes, a few pieces ahead."""
    report = IngestReport(day=day, files=len(files))
    pii = config.pii if config.pii.enabled else None
    rules = row_rules(day, config)
    counts: Counter[str] = Counter()
    pii_hits: Counter[str] = Counter()
    first_seen: dict[str, int] = {}  # interaction_id -> file_index << 32 | line of its first row
    out_path = home.warehouse(INTERACTIONS, day)
    with (
        atomic_path(out_path) as out_tmp,
        atomic_path(home.quarantine(INTERACTIONS, day)) as q_tmp,
        tempfile.TemporaryDirectory(prefix=f".{day}.parts.", suffix=".tmp", dir=out_tmp.parent) as part_dir,
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        quarantine = QuarantineSink(q_tmp)
        writer = pq.ParquetWriter(out_tmp, INTERACTIONS_SCHEMA, compression="zstd")

        def merge(piece: Piece, done: Future[_PieceResult]) -> None:
            result = done.result()
            report.rows_read += result.rows_read
            counts.update(result.counts)
            pii_hits.update(result.pii_hits)
            table = _read_part(result.accepted)
            rejected = [tuple(r.values()) for r in _read_part(result.quarantined).to_pylist()]
            base = piece.file_index << 32
            duplicates: dict[int, tuple[int, str, int]] = {}  # line -> (row, interaction_id, first seen)
            ids = table.column("interaction_id").to_pylist()
            for row, (iid, line) in enumerate(zip(ids, table.column(_LINE).to_pylist(), strict=True)):
                at = first_seen.setdefault(iid, base | line)
                if at != base | line:
                    duplicates[line] = (row, iid, at)
            if duplicates:
                keep = [True] * table.num_rows
                for item in piece.lines(Counter()):
                    if item.line in duplicates:
                        row, iid, at = duplicates[item.line]
                        keep[row] = False
                        rejected.append(
                            quarantine_row(item, "duplicate_id", duplicate_detail(iid, files, at), rules.pseudonyms)
                        )
                        pii_hits.subtract(_pii_hits_of(item, rules, pii))
                rejected.sort(key=lambda r: r[1])
                table = table.filter(pa.array(keep))
            for r in rejected:
                quarantine.add(*r)
            table = table.drop_columns([_LINE])
            writer.write_table(table, row_group_size=batch_rows)
            report.rows_accepted += table.num_rows
            os.unlink(result.accepted)
            os.unlink(result.quarantined)

        pending: deque[tuple[Piece, Future[_PieceResult]]] = deque()
        for seq, piece in enumerate(split_landing_files(files, piece_bytes)):
            job = _PieceJob(piece, part_dir, seq, rules, pii, batch_rows, batch_chars)
            pending.append((piece, pool.submit(_validate_piece, job)))
            if len(pending) > workers:  # keep every worker busy, and at most a few parts on disk
                merge(*pending.popleft())
        while pending:
            merge(*pending.popleft())
        writer.close()
        quarantine.close()
    report.rows_quarantined = sum(quarantine.reasons.values())
    report.quarantine_reasons = quarantine.reasons
    report.pii_hits = +pii_hits
    report.blank_lines = counts["blank_lines"]
    report.bytes_read = counts["bytes_read"]
    return report


def _pii_hits_of(item: LandingLine, rules: RowRules, pii: PiiConfig | None) -> Counter[str]:
    """The PII a worker counted in the texts of an accepted row (that turned out to be a duplicate)."""
    if pii is None:
        return Counter()
    redactor = PiiRedactor.from_config(pii)
    row = checked_row(item, rules)
    for text in (*row[6], row[8], row[11]):  # message contents, output, metadata JSON
        redactor.redact(text)
    return redactor.hits
