"""The capture SDK: what a serving process imports to log its traffic into the landing zone.

Standard library only (no pyarrow, DuckDB, SQLAlchemy, pydantic or process pools), so it is cheap
to import in any serving process:

    from flywheel.capture.sdk import CaptureWriter

Landing zone (one folder per UTC day, named by each record's `ts`):
`landing/interactions/YYYY-MM-DD/*.jsonl` and `landing/feedback/YYYY-MM-DD/*.jsonl`.
Every `CaptureWriter` writes its own files named `<host>-<pid>-<uuid>.jsonl`; a file is written as
`.<name>.tmp` and renamed when complete, so any number of processes can log at once and readers
(`flywheel.capture.landing.landing_files`) only ever see whole files. Each record is written to the
operating system as it is logged (no user-space buffer), and a file is published at the latest
`max_age_s` after it was opened, also when the process logs nothing more; so the `.tmp` a killed
process leaves holds every record it logged, and the pipeline publishes it once it is older than
`capture.orphan_tmp_after_s` (`flywheel.capture.landing.recover_orphans`).

With the home on object storage (`CaptureWriter("s3://bucket/home")` or a remote `FlywheelHome`) a
writer keeps each file's records in memory and uploads it as one object (`<name>.jsonl`, one PUT) when
it is published: no half object is ever visible, and a crash loses at most the records not yet
published (at most `max_records` / `max_bytes` / `max_age_s` worth); `sync()` publishes, since an
object store has no durable unpublished state. fsspec and the store's package (s3fs ...) are imported
only then.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flywheel.capture.records import FEEDBACK, FEEDBACK_KINDS, INTERACTIONS, format_ts
from flywheel.core.errors import InputError
from flywheel.core.permissions import private_dirs, private_opener

if TYPE_CHECKING:
    from flywheel.core.storage import FlywheelHome

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class _PartFile:
    """One landing file being written: `.<name>.tmp` until `complete()` renames it to `<name>`."""

    def __init__(self, folder: Path, name: str) -> None:
        private_dirs(folder)  # owner-only: the folders 0700, the file 0600 (it holds raw user ids)
        self.final = folder / name
        self.tmp = folder / f".{name}.tmp"
        self.fh: IO[bytes] = open(self.tmp, "ab", buffering=0, opener=private_opener)  # noqa: SIM115 - closed by complete()
        self.records = 0
        self.bytes = 0
        self.opened = time.monotonic()
        self.folder_synced = False

    def write(self, line: bytes) -> None:
        view = memoryview(line)
        while view:  # unbuffered: one write per record, unless the OS takes part of it
            view = view[self.fh.write(view) or 0 :]
        self.records += 1
        self.bytes += len(line)

    def sync(self) -> None:
        """fsync the records written so far, and the first time the folder (so the file's name is durable)."""
        os.fsync(self.fh.fileno())
        if not self.folder_synced:
            fd = os.open(self.final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.folder_synced = True

    def complete(self) -> Path | None:
        os.fsync(self.fh.fileno())
        self.fh.close()
        if self.records == 0:
            self.tmp.unlink(missing_ok=True)
            return None
        try:
            os.replace(self.tmp, self.final)
        except FileNotFoundError:
            return None  # published by `recover_orphans` (this process looked dead): the records are there
        return self.final


class _ObjectPart:
    """One landing object being filled in memory; `complete()` uploads it with one PUT, so readers see
    the whole object or none."""

    def __init__(self, fs: Any, folder: str, name: str) -> None:
        self.fs = fs
        self.final = f"{folder}/{name}"
        self.buffer = bytearray()
        self.records = 0
        self.bytes = 0
        self.opened = time.monotonic()

    def write(self, line: bytes) -> None:
        self.buffer += line
        self.records += 1
        self.bytes += len(line)

    def complete(self) -> str | None:
        if self.records == 0:
            return None
        self.fs.pipe_file(self.final, bytes(self.buffer))
        return f"{self.fs.unstrip_protocol(self.final)}"


PartFactory = Callable[[str, str, str], "_PartFile | _ObjectPart"]


def _part_factory(home: FlywheelHome | str | os.PathLike[str]) -> tuple[PartFactory, bool]:
    """`(stream, day, name) -> part` for a home, and whether it is on object storage: local files under
    `<root>/landing/<stream>/<day>`, or objects for a URL (the SDK never imports the storage layer)."""
    if isinstance(home, (str, os.PathLike)):
        text = os.fspath(home)
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+)://", text)
        if scheme is None or scheme.group(1).lower() == "file":
            root = Path(text.removeprefix("file://")).expanduser().resolve()
            return (lambda stream, day, name: _PartFile(root / "landing" / stream / day, name)), False
        import fsspec

        fs, base = fsspec.core.url_to_fs(text)
        base = base.rstrip("/")
        return (lambda stream, day, name: _ObjectPart(fs, f"{base}/landing/{stream}/{day}", name)), True
    if getattr(home, "remote", False):
        return (lambda stream, day, name: _ObjectPart(home.root.fs, home.landing(stream, day).path, name)), True
    return (lambda stream, day, name: _PartFile(home.landing(stream, day), name)), False


class CaptureWriter:
    """Append-only JSONL logging of interactions and feedback into the landing zone.

    `home` is a `FlywheelHome` or the path of one. Safe with many processes and threads: each writer
    has its own files (host, pid, uuid in the name). Records are written to a hidden temp file and
    published by atomic rename on `flush()`, `close()`, leaving a `with` block, or when a file reaches
    `max_records`, `max_bytes` or `max_age_s` (a daemon thread publishes aged files when no log call
    comes). Unpublished records are not visible to readers.
    """

    def __init__(
        self,
        home: FlywheelHome | str | os.PathLike[str],
        *,
        max_records: int = 10_000,
        max_bytes: int = 16 << 20,
        max_age_s: float = 60.0,
    ) -> None:
        self._new_part, self.remote = _part_factory(home)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], _PartFile | _ObjectPart] = {}
        self._publisher: threading.Thread | None = None
        self._wake = threading.Event()  # set by flush(): the publisher looks again (and ends if idle)
        self._pid = os.getpid()
        self._host = _NAME_UNSAFE.sub("_", socket.gethostname())[:64] or "host"
        self.completed: list[Path | str] = []  # published files (object URLs on object storage)

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
        self,
        interaction_id: str,
        kind: str,
        *,
        text: str | None = None,
        ts: datetime | float | str | None = None,
    ) -> None:
        """Log a user's reaction to an interaction: copy, resubmit, correction (`text`), thumbs_up/down."""
        if kind not in FEEDBACK_KINDS:
            raise InputError(f"unknown feedback kind {kind!r}; expected one of {FEEDBACK_KINDS}")
        if kind == "correction" and not text:
            raise InputError("a correction needs the corrected text")
        record = {"interaction_id": interaction_id, "ts": format_ts(ts), "kind": kind, "text": text}
        self._append(FEEDBACK, record)

    def _append(self, stream: str, record: dict[str, Any]) -> None:
        try:
            line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: logged escaped; ingestion quarantines it
            line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        day = record["ts"][:10]
        if os.getpid() != self._pid:  # forked: the parent's files, lock and thread are the parent's
            self._lock = threading.Lock()
            self._files = {}
            self._publisher = None
            self._wake = threading.Event()
            self._pid = os.getpid()
        with self._lock:
            key = (stream, day)
            part = self._files.get(key)
            if part is None:
                name = f"{self._host}-{self._pid}-{uuid.uuid4().hex}.jsonl"
                part = self._files[key] = self._new_part(stream, day, name)
            part.write(line)
            if part.records >= self.max_records or part.bytes >= self.max_bytes:
                self._complete(key)
            self._complete_aged()
            if self._files and (self._publisher is None or not self._publisher.is_alive()):
                self._publisher = threading.Thread(
                    target=self._publish_aged, name="flywheel-capture-publisher", daemon=True
                )
                self._publisher.start()

    def _complete_aged(self) -> float:
        """Publish the files open for `max_age_s` (under the lock); seconds until the next one is due."""
        now = time.monotonic()
        for k in [k for k, p in self._files.items() if now - p.opened >= self.max_age_s]:
            self._complete(k)
        return min((p.opened + self.max_age_s - now for p in self._files.values()), default=0.0)

    def _publish_aged(self) -> None:
        """The publisher thread: publishes files as they reach `max_age_s`; ends when none is open."""
        while True:
            with self._lock:
                if threading.current_thread() is not self._publisher:
                    return
                wait = self._complete_aged()
                if not self._files:
                    self._publisher = None
                    return
                self._wake.clear()
            self._wake.wait(max(wait, 0.01))

    def _complete(self, key: tuple[str, str]) -> None:
        done = self._files.pop(key).complete()
        if done is not None:
            self.completed.append(done)

    def flush(self) -> None:
        """Publish everything logged so far (complete and rename the open files)."""
        with self._lock:
            for key in list(self._files):
                self._complete(key)
            self._wake.set()

    def sync(self) -> None:
        """Make every record logged so far durable without publishing it: fsync of the open files (and,
        once, of their folders). After a crash `recover_orphans` publishes them; a server calls this
        before it acknowledges a request. On object storage this publishes them (see the module docstring)."""
        if self.remote:
            self.flush()
            return
        with self._lock:
            for part in self._files.values():
                part.sync()

    def close(self) -> None:
        self.flush()
