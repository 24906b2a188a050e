"""Capture: the SDK that logs production traffic to the landing zone, and the daily ingestion of it.

Landing zone (one folder per UTC day, named by each record's `ts`):
`landing/interactions/YYYY-MM-DD/*.jsonl` and `landing/feedback/YYYY-MM-DD/*.jsonl`.
Every `CaptureWriter` writes its own files named `<host>-<pid>-<uuid>.jsonl`; a file is written as
`.<name>.tmp` and renamed when complete, so any number of processes can log at once and readers
(`landing_files`) only ever see whole files.

Ingestion (`ingest_interactions`) streams a day's files line by line in bounded batches: each line is
decoded, parsed and validated (a failing row goes to quarantine with its reason), PII is redacted
(`flywheel.capture.pii`), repeated interaction ids are quarantined as `duplicate_id`, and accepted rows are
written to `warehouse/interactions/<day>.parquet`. Rows read = rows accepted + rows quarantined.
A big day (>= `PARALLEL_MIN_BYTES`) is validated and redacted by up to 2 worker processes, a piece
of a file each; this process then removes duplicates and writes in file and line order, so the
tables are the same as with one process.
Blank lines are not rows: JSONL readers skip them, so they are counted apart (`blank_lines`).
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import math
import multiprocessing
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from flywheel.capture.pii import PiiRedactor
from flywheel.config import CaptureConfig
from flywheel.core.records import MESSAGE_TYPE, MESSAGES_TYPE
from flywheel.core.storage import FlywheelHome, atomic_path

INTERACTIONS = "interactions"
FEEDBACK = "feedback"
FEEDBACK_KINDS: tuple[str, ...] = ("copy", "resubmit", "correction", "thumbs_up", "thumbs_down")
ROLES = frozenset({"system", "user", "assistant", "tool"})

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
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)

PARALLEL_MIN_BYTES = 16 << 20  # smaller days are ingested in-process: starting the pool costs ~1 s
PIECE_BYTES = 32 << 20  # landing files bigger than this are split at line ends into pieces this big

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MIN_TS_US = 0
_MAX_TS_US = int((datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH) / _ONE_US)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_METADATA_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --- timestamps ------------------------------------------------------------------------------------
class RowError(ValueError):
    """A row that cannot be accepted: `reason` is a short code, the message says what and where."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_ts_us(value: Any, field_name: str = "ts") -> int:
    """Epoch microseconds (UTC) of an RFC 3339 string with an offset, or of epoch seconds."""
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise RowError("bad_timestamp", f"{field_name}: not RFC 3339: {value[:64]!r}") from None
        if dt.tzinfo is None:
            raise RowError("bad_timestamp", f"{field_name}: no UTC offset in {value[:64]!r}")
        us = (dt - _EPOCH) // _ONE_US
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise RowError("bad_timestamp", f"{field_name}: not a finite number: {value!r}")
        us = round(value * 1_000_000)
    elif value is None:
        raise RowError("missing_field", f"{field_name}: missing")
    else:
        raise RowError("bad_timestamp", f"{field_name}: expected an RFC 3339 string or epoch seconds, got {type(value).__name__}")
    if not _MIN_TS_US <= us < _MAX_TS_US:
        raise RowError("bad_timestamp", f"{field_name}: {value!r} is outside 1970-2099")
    return us


def format_ts(ts: datetime | float | str | None = None) -> str:
    """An RFC 3339 UTC string (`...Z`, microseconds) for a datetime, epoch seconds, or now."""
    if ts is None:
        dt = datetime.now(UTC)
    elif isinstance(ts, datetime):
        dt = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    elif isinstance(ts, str):
        dt = _EPOCH + parse_ts_us(ts) * _ONE_US
    else:
        dt = _EPOCH + timedelta(seconds=float(ts))
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_of(ts_text: str) -> str:
    """The UTC day (`YYYY-MM-DD`) of an RFC 3339 string."""
    return (_EPOCH + parse_ts_us(ts_text) * _ONE_US).date().isoformat()


def next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def day_start_us(day: str) -> int:
    return (datetime.fromisoformat(day).replace(tzinfo=UTC) - _EPOCH) // _ONE_US


# --- the SDK ---------------------------------------------------------------------------------------
class _PartFile:
    """One landing file being written: `.<name>.tmp` until `complete()` renames it to `<name>`."""

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.final = folder / name
        self.tmp = folder / f".{name}.tmp"
        self.fh: IO[bytes] = open(self.tmp, "ab")  # noqa: SIM115 - closed by complete()
        self.records = 0
        self.bytes = 0
        self.opened = time.monotonic()

    def write(self, line: bytes) -> None:
        self.fh.write(line)
        self.records += 1
        self.bytes += len(line)

    def complete(self) -> Path | None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        if self.records == 0:
            self.tmp.unlink(missing_ok=True)
            return None
        os.replace(self.tmp, self.final)
        return self.final


class CaptureWriter:
    """Append-only JSONL logging of interactions and feedback into the landing zone.

    Safe with many processes and threads: each writer has its own files (host, pid, uuid in the
    name). Records are buffered in a hidden temp file and published by atomic rename on `flush()`,
    `close()`, leaving a `with` block, or when a file reaches `max_records`, `max_bytes` or
    `max_age_s` (checked at each log call). Unflushed records are not visible to readers.
    """

    def __init__(
        self,
        home: FlywheelHome | str | os.PathLike[str],
        *,
        max_records: int = 10_000,
        max_bytes: int = 16 << 20,
        max_age_s: float = 60.0,
    ) -> None:
        self.home = home if isinstance(home, FlywheelHome) else FlywheelHome(home)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], _PartFile] = {}
        self._pid = os.getpid()
        self._host = _NAME_UNSAFE.sub("_", socket.gethostname())[:64] or "host"
        self.completed: list[Path] = []

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_interaction(
        self,
        messages: Sequence[Mapping[str, str]],
        output: str,
        *,
        session_id: str,
        user_id: str,
        model_version: str,
        latency_ms: float,
        confidence: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        interaction_id: str | None = None,
        ts: datetime | float | str | None = None,
    ) -> str:
        """Log one model call (`messages` is the prompt in ChatML); returns its interaction_id."""
        interaction_id = interaction_id or str(uuid.uuid4())
        record = {
            "interaction_id": interaction_id,
            "ts": format_ts(ts),
            "session_id": session_id,
            "user_id": user_id,
            "model_version": model_version,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "output": output,
            "latency_ms": float(latency_ms),
            "confidence": None if confidence is None else float(confidence),
            "metadata": dict(metadata) if metadata else None,
        }
        self._append(INTERACTIONS, record)
        return interaction_id

    def log_feedback(
        self, interaction_id: str, kind: str, *, text: str | None = None, ts: datetime | float | str | None = None
    ) -> None:
        """Log a user's reaction to an interaction: copy, resubmit, correction (with `text`), thumbs_up/down."""
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}; expected one of {FEEDBACK_KINDS}")
        if kind == "correction" and not text:
            raise ValueError("a correction needs the corrected text")
        record = {"interaction_id": interaction_id, "ts": format_ts(ts), "kind": kind, "text": text}
        self._append(FEEDBACK, record)

    def _append(self, stream: str, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        day = record["ts"][:10]
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's open files are the parent's
                self._files.clear()
                self._pid = os.getpid()
            key = (stream, day)
            part = self._files.get(key)
            if part is None:
                name = f"{self._host}-{self._pid}-{uuid.uuid4().hex}.jsonl"
                part = self._files[key] = _PartFile(self.home.landing(stream, day), name)
            part.write(line)
            if part.records >= self.max_records or part.bytes >= self.max_bytes:
                self._complete(key)
            now = time.monotonic()
            for k in [k for k, p in self._files.items() if now - p.opened >= self.max_age_s]:
                self._complete(k)

    def _complete(self, key: tuple[str, str]) -> None:
        done = self._files.pop(key).complete()
        if done is not None:
            self.completed.append(done)

    def flush(self) -> None:
        """Publish everything logged so far (complete and rename the open files)."""
        with self._lock:
            for key in list(self._files):
                self._complete(key)

    def close(self) -> None:
        self.flush()


def landing_files(home: FlywheelHome, stream: str, day: str) -> list[Path]:
    """The completed landing files of one stream and day, sorted by name (in-progress ones skipped)."""
    folder = home.landing(stream, day)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp")
    )


# --- reading landing files -------------------------------------------------------------------------
@dataclass(slots=True)
class LandingLine:
    """One non-blank line of a landing file: where it came from and its bytes (newline stripped)."""

    file_index: int
    source_file: str
    line: int
    raw: bytes


def iter_landing_lines(files: Iterable[Path], counts: Counter[str]) -> Iterator[LandingLine]:
    """Every non-blank line of `files` in order; blank lines are counted in `counts["blank_lines"]`."""
    for index, path in enumerate(files):
        with open(path, "rb") as fh:
            yield from _non_blank_lines(fh, index, str(path), 1, counts)


def _non_blank_lines(
    lines: Iterable[bytes], index: int, name: str, first: int, counts: Counter[str]
) -> Iterator[LandingLine]:
    blank = size = 0
    try:
        for number, raw in enumerate(lines, start=first):
            raw = raw.rstrip(b"\r\n")
            if not raw or raw.isspace():  # what `not raw.strip()` says, without copying the line
                blank += 1
                continue
            size += len(raw)
            yield LandingLine(index, name, number, raw)
    finally:
        counts["blank_lines"] += blank
        counts["bytes_read"] += size


def decode_object(raw: bytes) -> dict[str, Any]:
    """Bytes of one JSONL line -> a JSON object, or RowError(invalid_utf8 | invalid_json | not_an_object)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowError("invalid_json", f"{exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise RowError("invalid_json", "nested too deeply") from None
    if not isinstance(obj, dict):
        raise RowError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def raw_text(raw: bytes) -> str:
    """The raw line as text for quarantine (invalid UTF-8 bytes kept as `\\xNN` escapes)."""
    return raw.decode("utf-8", errors="backslashreplace")


def _text_field(obj: dict[str, Any], name: str, max_chars: int, *, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise RowError("missing_id" if name == "interaction_id" else "missing_field", f"{name}: missing")
        return None
    if not isinstance(value, str):
        raise RowError("wrong_type", f"{name}: expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise RowError("missing_id" if name == "interaction_id" else "missing_field", f"{name}: empty")
    if len(value) > max_chars:
        raise RowError("huge_field", f"{name}: {len(value)} characters > {max_chars}")
    return value


def _number_field(obj: dict[str, Any], name: str, *, required: bool, low: float, high: float) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise RowError("missing_field", f"{name}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError("wrong_type", f"{name}: expected a number, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise RowError("out_of_range", f"{name}: {value!r} not in [{low}, {high}]")
    return float(value)


def validate_interaction(obj: dict[str, Any], max_chars: int) -> tuple[Any, ...]:
    """The checked fields of one interaction record, in `_RowBatch.add` order, or RowError."""
    interaction_id = _text_field(obj, "interaction_id", max_chars)
    ts_us = parse_ts_us(obj.get("ts"))
    session_id = _text_field(obj, "session_id", max_chars)
    user_id = _text_field(obj, "user_id", max_chars)
    model_version = _text_field(obj, "model_version", max_chars)
    messages = obj.get("messages")
    if messages is None:
        raise RowError("missing_field", "messages: missing")
    if not isinstance(messages, list) or not messages:
        raise RowError("bad_messages", "messages: expected a non-empty list of {role, content}")
    roles: list[str] = []
    contents: list[str] = []
    last_user = -1
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RowError("bad_messages", f"messages[{i}]: expected an object, got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise RowError("bad_messages", f"messages[{i}].role: {str(role)[:32]!r} is not one of {sorted(ROLES)}")
        if not isinstance(content, str):
            raise RowError("bad_messages", f"messages[{i}].content: expected a string, got {type(content).__name__}")
        if len(content) > max_chars:
            raise RowError("huge_field", f"messages[{i}].content: {len(content)} characters > {max_chars}")
        if role == "user":
            last_user = i
        roles.append(role)
        contents.append(content)
    if last_user < 0:
        raise RowError("bad_messages", "messages: no user message")
    output = obj.get("output")
    if not isinstance(output, str):
        raise RowError("missing_field" if output is None else "wrong_type", f"output: expected a string, got {type(output).__name__}")
    if len(output) > max_chars:
        raise RowError("huge_field", f"output: {len(output)} characters > {max_chars}")
    latency_ms = _number_field(obj, "latency_ms", required=True, low=0.0, high=1e9)
    confidence = _number_field(obj, "confidence", required=False, low=0.0, high=1.0)
    metadata = obj.get("metadata")
    if metadata is None:
        metadata_json = "{}"
    elif isinstance(metadata, dict):
        metadata_json = _METADATA_ENCODER.encode(metadata)
        if len(metadata_json) > max_chars:
            raise RowError("huge_field", f"metadata: {len(metadata_json)} characters > {max_chars}")
    else:
        raise RowError("wrong_type", f"metadata: expected an object, got {type(metadata).__name__}")
    return (
        interaction_id, ts_us, session_id, user_id, model_version, roles, contents, last_user,
        output, latency_ms, confidence, metadata_json,
    )  # fmt: skip


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Parsing millions of rows makes millions of short-lived, acyclic objects; the cyclic garbage
    collector would rescan the live ones over and over (about a third of the parse time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- building Arrow batches ------------------------------------------------------------------------
class _RowBatch:
    """Accepted rows collected column by column, turned into one redacted Arrow batch."""

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
        struct = pa.StructArray.from_arrays([pa.array(self.roles, pa.string()), contents], fields=list(MESSAGE_TYPE))
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


class QuarantineSink:
    """Collects rejected rows and writes them in batches to a Parquet file (QUARANTINE_SCHEMA)."""

    def __init__(self, path: Path, batch_rows: int = 20_000) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.rows: list[tuple[str, int, str, str, str]] = []
        self.reasons: Counter[str] = Counter()
        self.writer: pq.ParquetWriter | None = None

    def add(self, source_file: str, line: int, reason: str, detail: str, raw: str) -> None:
        self.rows.append((source_file, line, reason, detail, raw))
        self.reasons[reason] += 1
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, QUARANTINE_SCHEMA, compression="zstd")
        if self.rows:
            cols = list(zip(*self.rows, strict=True))
            self.writer.write_batch(
                pa.RecordBatch.from_arrays([pa.array(c, t) for c, t in zip(cols, QUARANTINE_SCHEMA.types, strict=True)], schema=QUARANTINE_SCHEMA)
            )
            self.rows = []

    def close(self) -> None:
        self.flush()
        assert self.writer is not None
        self.writer.close()


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
        raise RuntimeError(
            "ingest_interactions ran while a worker process was importing the main module: call it under "
            "`if __name__ == '__main__':` (workers are started with 'spawn'), or pass workers=1"
        )
    with cyclic_gc_paused():
        if workers > 1:
            return _ingest_in_pool(home, day, config, files, workers, batch_rows, batch_chars, piece_bytes)
        return _ingest(home, day, config, files, batch_rows, batch_chars)


def ingest_workers() -> int:
    """Worker processes for a big day: the CPUs this process may use, at most 2."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def _checked_row(item: LandingLine, max_chars: int) -> tuple[Any, ...]:
    if len(item.raw) > 16 * max_chars + 65_536:  # larger than any valid row could be
        raise RowError("huge_field", f"line of {len(item.raw)} bytes exceeds the field limits")
    return validate_interaction(decode_object(item.raw), max_chars)


def _quarantine_row(item: LandingLine, reason: str, detail: str) -> tuple[str, int, str, str, str]:
    return (item.source_file, item.line, reason, f"{Path(item.source_file).name}:{item.line}: {detail}", raw_text(item.raw))


def _duplicate_detail(iid: str, files: Sequence[Path], at: int) -> str:
    return f"interaction_id {iid!r} already seen at {files[at >> 32].name}:{at & 0xFFFFFFFF}"


def _ingest(
    home: FlywheelHome, day: str, config: CaptureConfig, files: list[Path], batch_rows: int, batch_chars: int
) -> IngestReport:
    report = IngestReport(day=day, files=len(files))
    redactor = PiiRedactor(tuple(config.pii.kinds)) if config.pii.enabled else None
    max_chars = config.max_field_chars
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}  # interaction_id -> file_index << 32 | line of its first row
    with (
        atomic_path(home.warehouse(INTERACTIONS, day)) as out_tmp,
        atomic_path(home.quarantine(INTERACTIONS, day)) as q_tmp,
    ):
        quarantine = QuarantineSink(q_tmp)
        writer = pq.ParquetWriter(out_tmp, INTERACTIONS_SCHEMA, compression="zstd")
        batch = _RowBatch()
        for item in iter_landing_lines(files, counts):
            report.rows_read += 1
            try:
                row = _checked_row(item, max_chars)
                iid = row[0]
                if iid in first_seen:
                    raise RowError("duplicate_id", _duplicate_detail(iid, files, first_seen[iid]))
            except RowError as err:
                quarantine.add(*_quarantine_row(item, err.reason, err.detail))
                continue
            first_seen[iid] = item.file_index << 32 | item.line
            batch.add(row, len(item.raw))
            if len(batch) >= batch_rows or batch.chars >= batch_chars:
                writer.write_batch(batch.to_batch(redactor))
                report.rows_accepted += len(batch)
                batch = _RowBatch()
        if len(batch):
            writer.write_batch(batch.to_batch(redactor))
            report.rows_accepted += len(batch)
        writer.close()
        quarantine.close()
    report.rows_quarantined = sum(quarantine.reasons.values())
    report.quarantine_reasons = quarantine.reasons
    report.pii_hits = redactor.hits if redactor is not None else Counter()
    report.blank_lines = counts["blank_lines"]
    report.bytes_read = counts["bytes_read"]
    return report


# --- ingestion in worker processes ---------------------------------------------------------------
_LINE = "_line"
_PART_SCHEMA = INTERACTIONS_SCHEMA.append(pa.field(_LINE, pa.int64()))


@dataclass(frozen=True)
class _Piece:
    """Bytes `start:end` of landing file number `file_index`; its first line is line `first_line`."""

    file_index: int
    path: str
    start: int
    end: int
    first_line: int

    def lines(self, counts: Counter[str]) -> Iterator[LandingLine]:
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            data = fh.read(self.end - self.start)
        return _non_blank_lines(io.BytesIO(data), self.file_index, self.path, self.first_line, counts)


def split_landing_files(files: Sequence[Path], piece_bytes: int) -> Iterator[_Piece]:
    """The files as pieces of at most `piece_bytes` (more only for a single longer line), cut at line ends."""
    for index, path in enumerate(files):
        size = path.stat().st_size
        start, line = 0, 1
        with open(path, "rb") as fh:
            while size - start > piece_bytes:
                block = fh.read(piece_bytes)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    end, lines = start + cut + 1, block.count(b"\n", 0, cut + 1)
                else:  # one line longer than a piece: the piece runs to its end
                    end, lines = start + len(block), 1
                    while more := fh.read(1 << 20):
                        at = more.find(b"\n")
                        if at >= 0:
                            end += at + 1
                            break
                        end += len(more)
                yield _Piece(index, str(path), start, end, line)
                start, line = end, line + lines
                fh.seek(start)
        if start < size:
            yield _Piece(index, str(path), start, size, line)


@dataclass(frozen=True)
class _PieceJob:
    piece: _Piece
    part_dir: str
    seq: int
    max_chars: int
    pii_kinds: tuple[str, ...] | None
    batch_rows: int
    batch_chars: int


@dataclass
class _PieceResult:
    accepted: str  # Arrow IPC file: redacted accepted rows (_PART_SCHEMA), duplicates not yet removed
    quarantined: str  # Arrow IPC file (QUARANTINE_SCHEMA)
    rows_read: int
    counts: Counter[str]
    pii_hits: Counter[str]


def _validate_piece(job: _PieceJob) -> _PieceResult:
    """In a worker: validate and redact one piece into Arrow IPC parts (duplicates are left to the parent)."""
    with cyclic_gc_paused():
        redactor = PiiRedactor(job.pii_kinds) if job.pii_kinds is not None else None
        counts: Counter[str] = Counter()
        rejected: list[tuple[str, int, str, str, str]] = []
        rows_read = 0
        accepted = os.path.join(job.part_dir, f"{job.seq:06d}.accepted.arrow")
        with pa.OSFile(accepted, "wb") as sink, pa.ipc.new_file(sink, _PART_SCHEMA) as writer:
            batch, lines = _RowBatch(), []
            for item in job.piece.lines(counts):
                rows_read += 1
                try:
                    row = _checked_row(item, job.max_chars)
                except RowError as err:
                    rejected.append(_quarantine_row(item, err.reason, err.detail))
                    continue
                batch.add(row, len(item.raw))
                lines.append(item.line)
                if len(batch) >= job.batch_rows or batch.chars >= job.batch_chars:
                    writer.write_batch(_with_lines(batch.to_batch(redactor), lines))
                    batch, lines = _RowBatch(), []
            if len(batch):
                writer.write_batch(_with_lines(batch.to_batch(redactor), lines))
        quarantined = os.path.join(job.part_dir, f"{job.seq:06d}.quarantined.arrow")
        with pa.OSFile(quarantined, "wb") as sink, pa.ipc.new_file(sink, QUARANTINE_SCHEMA) as writer:
            writer.write_table(_quarantine_table(rejected))
    return _PieceResult(accepted, quarantined, rows_read, counts, redactor.hits if redactor is not None else Counter())


def _with_lines(batch: pa.RecordBatch, lines: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([*batch.columns, pa.array(lines, pa.int64())], schema=_PART_SCHEMA)


def _quarantine_table(rows: list[tuple[str, int, str, str, str]]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in QUARANTINE_SCHEMA]
    return pa.Table.from_arrays([pa.array(c, t) for c, t in zip(cols, QUARANTINE_SCHEMA.types, strict=True)], schema=QUARANTINE_SCHEMA)


def _read_part(path: str) -> pa.Table:
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


def _ingest_in_pool(
    home: FlywheelHome, day: str, config: CaptureConfig, files: list[Path], workers: int,
    batch_rows: int, batch_chars: int, piece_bytes: int,
) -> IngestReport:  # fmt: skip
    """`_ingest` with the validation and redaction done by `workers` processes, a few pieces ahead."""
    report = IngestReport(day=day, files=len(files))
    pii_kinds = tuple(config.pii.kinds) if config.pii.enabled else None
    counts: Counter[str] = Counter()
    pii_hits: Counter[str] = Counter()
    first_seen: dict[str, int] = {}  # interaction_id -> file_index << 32 | line of its first row
    out_path = home.warehouse(INTERACTIONS, day)
    with (
        atomic_path(out_path) as out_tmp,
        atomic_path(home.quarantine(INTERACTIONS, day)) as q_tmp,
        tempfile.TemporaryDirectory(prefix=f".{day}.parts.", suffix=".tmp", dir=out_path.parent) as part_dir,
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        quarantine = QuarantineSink(q_tmp)
        writer = pq.ParquetWriter(out_tmp, INTERACTIONS_SCHEMA, compression="zstd")

        def merge(piece: _Piece, done: Future[_PieceResult]) -> None:
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
                        rejected.append(_quarantine_row(item, "duplicate_id", _duplicate_detail(iid, files, at)))
                        pii_hits.subtract(_pii_hits_of(item, config.max_field_chars, pii_kinds))
                rejected.sort(key=lambda r: r[1])
                table = table.filter(pa.array(keep))
            for r in rejected:
                quarantine.add(*r)
            table = table.drop_columns([_LINE])
            writer.write_table(table, row_group_size=batch_rows)
            report.rows_accepted += table.num_rows
            os.unlink(result.accepted)
            os.unlink(result.quarantined)

        pending: deque[tuple[_Piece, Future[_PieceResult]]] = deque()
        for seq, piece in enumerate(split_landing_files(files, piece_bytes)):
            job = _PieceJob(piece, part_dir, seq, config.max_field_chars, pii_kinds, batch_rows, batch_chars)
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


def _pii_hits_of(item: LandingLine, max_chars: int, pii_kinds: tuple[str, ...] | None) -> Counter[str]:
    """The PII a worker counted in the texts of an accepted row (that turned out to be a duplicate)."""
    if pii_kinds is None:
        return Counter()
    redactor = PiiRedactor(pii_kinds)
    row = _checked_row(item, max_chars)
    for text in (*row[6], row[8], row[11]):  # message contents, output, metadata JSON
        redactor.redact(text)
    return redactor.hits


# --- what a day's capture run reads (for the landing sensor) ---------------------------------------
def landing_days(home: FlywheelHome, stream: str = INTERACTIONS) -> list[str]:
    """The days (`YYYY-MM-DD`) that have a folder in the landing zone of `stream`, sorted."""
    folder = home.landing(stream)
    if not folder.is_dir():
        return []
    days = []
    for p in folder.iterdir():
        try:
            if p.is_dir() and date.fromisoformat(p.name).isoformat() == p.name:
                days.append(p.name)
        except ValueError:
            continue
    return sorted(days)


def capture_inputs(home: FlywheelHome, day: str) -> list[Path]:
    """Every landing file a capture run of `day` reads: the day's and the next day's interactions
    (the next day's first window, for resubmissions across midnight) and feedback (late events)."""
    following = next_day(day)
    return [
        *landing_files(home, INTERACTIONS, day),
        *landing_files(home, FEEDBACK, day),
        *landing_files(home, INTERACTIONS, following),
        *landing_files(home, FEEDBACK, following),
    ]


def inputs_fingerprint(home: FlywheelHome, files: Iterable[Path]) -> str:
    """A short hash of a set of completed landing files (their paths under the home and sizes)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.relative_to(home.root)}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def days_to_capture(home: FlywheelHome, seen: Mapping[str, str]) -> dict[str, str]:
    """{day: fingerprint} of the days with landing interactions whose inputs differ from `seen`."""
    changed = {}
    for day in landing_days(home, INTERACTIONS):
        if not landing_files(home, INTERACTIONS, day):
            continue
        fingerprint = inputs_fingerprint(home, capture_inputs(home, day))
        if seen.get(day) != fingerprint:
            changed[day] = fingerprint
    return changed
