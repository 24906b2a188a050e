"""The tables capture writes: the interactions schema, accepted rows -> redacted Arrow batches,
rejected rows -> a quarantine file (`QUARANTINE_SCHEMA`), and the report of a day's ingestion."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from flywheel.capture.pii import PiiRedactor
from flywheel.capture.validation import QuarantineRow
from flywheel.core.records import MESSAGE_TYPE, MESSAGES_TYPE, QUARANTINE_SCHEMA, quarantine_table

T = TypeVar("T")

INTERACTIONS_SCHEMA = pa.schema(
    [
        ("interaction_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("model_version", pa.string()),
        ("messages", MESSAGES_TYPE),  # PII-redacted prompt, ChatML
        ("input_text", pa.string()),  # last user message, redacted
        ("output", pa.string()),  # redacted
        ("latency_ms", pa.float64()),
        ("confidence", pa.float64()),
        ("metadata", pa.string()),  # JSON object, redacted
    ]
)


# --- building Arrow batches ------------------------------------------------------------------------
class RowBatch:
    """Accepted rows (`validate_interaction` tuples) collected column by column, turned into one
    redacted Arrow batch."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.ts: list[int] = []
        self.sessions: list[str] = []
        self.users: list[str] = []
        self.models: list[str] = []
        self.offsets: list[int] = [0]
        self.roles: list[str] = []
        self.contents: list[str] = []
        self.input_index: list[int] = []
        self.outputs: list[str] = []
        self.latency: list[float] = []
        self.confidence: list[float | None] = []
        self.metadata: list[str] = []
        self.chars = 0

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, row: tuple[Any, ...], size: int) -> None:
        (iid, ts_us, session, user, model, roles, contents, last_user, output, latency, conf, meta) = row
        self.ids.append(iid)
        self.ts.append(ts_us)
        self.sessions.append(session)
        self.users.append(user)
        self.models.append(model)
        self.input_index.append(len(self.contents) + last_user)
        self.roles.extend(roles)
        self.contents.extend(contents)
        self.offsets.append(len(self.contents))
        self.outputs.append(output)
        self.latency.append(latency)
        self.confidence.append(conf)
        self.metadata.append(meta)
        self.chars += size

    def to_batch(self, redactor: PiiRedactor | None) -> pa.RecordBatch:
        contents = pa.array(self.contents, pa.string())
        outputs = pa.array(self.outputs, pa.string())
        metadata = pa.array(self.metadata, pa.string())
        if redactor is not None:
            contents = redactor.redact_array(contents)
            outputs = redactor.redact_array(outputs)
            metadata = redactor.redact_array(metadata)
        struct = pa.StructArray.from_arrays(
            [pa.array(self.roles, pa.string()), contents], fields=list(MESSAGE_TYPE)
        )
        messages = pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), struct, type=MESSAGES_TYPE)
        columns = [
            pa.array(self.ids, pa.string()),
            pa.array(self.ts, pa.timestamp("us", tz="UTC")),
            pa.array(self.sessions, pa.string()),
            pa.array(self.users, pa.string()),
            pa.array(self.models, pa.string()),
            messages,
            contents.take(pa.array(self.input_index, pa.int64())),
            outputs,
            pa.array(self.latency, pa.float64()),
            pa.array(self.confidence, pa.float64()),
            metadata,
        ]
        return pa.RecordBatch.from_arrays(columns, schema=INTERACTIONS_SCHEMA)

    def select(self, rows: Sequence[int]) -> RowBatch:
        """A batch of the rows at positions `rows` (their sizes not kept)."""
        out = RowBatch()
        for i in rows:
            a, b = self.offsets[i], self.offsets[i + 1]
            out.add(
                (self.ids[i], self.ts[i], self.sessions[i], self.users[i], self.models[i], self.roles[a:b],
                 self.contents[a:b], self.input_index[i] - a, self.outputs[i], self.latency[i],
                 self.confidence[i], self.metadata[i]),
                0,
            )  # fmt: skip
        return out

    def convert(self, redactor: PiiRedactor | None) -> tuple[pa.RecordBatch, list[tuple[int, Exception]]]:
        """The redacted Arrow batch of the rows that convert, and (position, error) of those that do not
        (validated rows always convert; see `convert_each`)."""
        parts, failed = convert_each(
            lambda: self.to_batch(redactor),
            lambda i: self.select([i]).to_batch(redactor),
            len(self),
            redactor,
        )
        if len(parts) == 1:
            return parts[0], failed
        if not parts:
            return pa.RecordBatch.from_pylist([], schema=INTERACTIONS_SCHEMA), failed
        return pa.concat_batches(parts), failed


def convert_each(
    build_all: Callable[[], T], build_one: Callable[[int], T], rows: int, redactor: PiiRedactor | None
) -> tuple[list[T], list[tuple[int, Exception]]]:
    """`[build_all()]`; should it raise, `build_one(i)` for each of the `rows` apart: the parts built
    and (position, error) of the rows that fail, so that one row never stops the others. The
    redactor's PII counts are those of the parts kept."""
    saved = Counter(redactor.hits) if redactor is not None else None
    try:
        return [build_all()], []
    except Exception:  # noqa: BLE001 - any error of any row: find the rows, keep the others
        _restore_hits(redactor, saved)
    parts: list[T] = []
    failed: list[tuple[int, Exception]] = []
    for i in range(rows):
        saved = Counter(redactor.hits) if redactor is not None else None
        try:
            parts.append(build_one(i))
        except Exception as exc:  # noqa: BLE001
            _restore_hits(redactor, saved)
            failed.append((i, exc))
    return parts, failed


def _restore_hits(redactor: PiiRedactor | None, saved: Counter[str] | None) -> None:
    """Put back the PII counts of before a failed attempt (in place: the redactor's patterns hold them)."""
    if redactor is not None and saved is not None:
        redactor.hits.clear()
        redactor.hits.update(saved)


# --- quarantine ------------------------------------------------------------------------------------
def quarantine_rows_table(rows: Sequence[QuarantineRow]) -> pa.Table:
    """Quarantine rows (tuples in QUARANTINE_SCHEMA's field order) as one Arrow table."""
    return quarantine_table([dict(zip(QUARANTINE_SCHEMA.names, row, strict=True)) for row in rows])


class QuarantineSink:
    """Collects rejected rows and writes them in batches to a Parquet file (QUARANTINE_SCHEMA). The
    detail and the raw line are PII-redacted (`PiiRedactor.redact_raw`: a JSON line keeps its keys and
    structure, never its PII), by every kind and no allowlist unless `redactor` says otherwise."""

    def __init__(self, path: Path, batch_rows: int = 20_000, redactor: PiiRedactor | None = None) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.redactor = redactor or PiiRedactor()
        self.rows: list[QuarantineRow] = []
        self.reasons: Counter[str] = Counter()
        self.writer: pq.ParquetWriter | None = None

    def add(self, source_file: str, line: int, reason: str, detail: str, raw: str) -> None:
        self.rows.append((source_file, line, reason, self.redactor.redact(detail), self.redactor.redact_raw(raw)))
        self.reasons[reason] += 1
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, QUARANTINE_SCHEMA, compression="zstd")
        if self.rows:
            self.writer.write_table(quarantine_rows_table(self.rows))
            self.rows = []

    def close(self) -> None:
        self.flush()  # opens the file even when no row was rejected: an empty day has an empty table
        if self.writer is not None:
            self.writer.close()


# --- the report ------------------------------------------------------------------------------------
@dataclass
class IngestReport:
    """What one ingestion read, kept, quarantined (per reason) and redacted (per PII kind)."""

    day: str
    files: int = 0
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    pii_hits: Counter[str] = field(default_factory=Counter)
    blank_lines: int = 0
    bytes_read: int = 0

    @property
    def quarantine_rate(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0

    @property
    def conserved(self) -> bool:
        return self.rows_read == self.rows_accepted + self.rows_quarantined
