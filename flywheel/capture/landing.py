"""Reading the landing zone: completed files, their non-blank lines (whole or in pieces), what a
day's capture run reads (for the landing sensor), and the files a killed writer left behind.

Blank lines are not rows: JSONL readers skip them, so they are counted apart (`blank_lines`).

A writer's file is `.<name>.tmp` until it is complete. A live `CaptureWriter` publishes each file at
the latest `max_age_s` (default 60 s) after opening it, so a `.tmp` untouched for longer than
`capture.orphan_tmp_after_s` was left by a killed process: `recover_orphans` publishes it as
`<name>.recovered.jsonl`, whole. Every record the writer logged is in it (the SDK writes unbuffered);
a last line without its newline (cut by a full disk, or by the kill of a writer that buffered) is
counted here (`partial_lines`) and, if it was cut, quarantined by ingestion as `invalid_json`.
An empty orphan is removed.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from flywheel.capture.records import FEEDBACK, INTERACTIONS, next_day
from flywheel.core.storage import FlywheelHome, storage_path


def landing_files(home: FlywheelHome, stream: str, day: str) -> list[Path]:
    """The completed landing files of one stream and day, sorted by name (in-progress ones skipped)."""
    folder = home.landing(stream, day)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp")
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
        with path.open("rb") as fh:
            yield from non_blank_lines(fh, index, str(path), 1, counts)


def non_blank_lines(
    lines: Iterable[bytes], index: int, name: str, first: int, counts: Counter[str]
) -> Iterator[LandingLine]:
    """The non-blank `lines` of file number `index` (`name`), numbered from `first`; adds the blank
    lines and the bytes read to `counts`."""
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


def lines_at(files: Sequence[Path], wanted: set[tuple[int, int]]) -> list[LandingLine]:
    """The landing lines at (file number, line) `wanted`, read again, in file and line order (for the
    rare row that fails after its line was let go)."""
    found: list[LandingLine] = []
    for index in sorted({f for f, _ in wanted}):
        with files[index].open("rb") as fh:
            lines = non_blank_lines(fh, index, str(files[index]), 1, Counter())
            found += [item for item in lines if (index, item.line) in wanted]
    return found


@dataclass(frozen=True)
class Piece:
    """Bytes `start:end` of landing file number `file_index`; its first line is line `first_line`."""

    file_index: int
    path: str
    start: int
    end: int
    first_line: int

    def lines(self, counts: Counter[str]) -> Iterator[LandingLine]:
        with storage_path(self.path).open("rb") as fh:
            fh.seek(self.start)
            data = fh.read(self.end - self.start)
        return non_blank_lines(io.BytesIO(data), self.file_index, self.path, self.first_line, counts)


def split_landing_files(files: Sequence[Path], piece_bytes: int) -> Iterator[Piece]:
    """The files as pieces of at most `piece_bytes` (more only for a single longer line), cut at line ends."""
    for index, path in enumerate(files):
        size = path.stat().st_size
        start, line = 0, 1
        with path.open("rb") as fh:
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
                yield Piece(index, str(path), start, end, line)
                start, line = end, line + lines
                fh.seek(start)
        if start < size:
            yield Piece(index, str(path), start, size, line)


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
    """A short hash of a set of completed landing files (their paths under the home, sizes and
    modification times: a file fixed in place changes it, even at the same size)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path.relative_to(home.root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
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


# --- files a killed writer left behind -------------------------------------------------------------
@dataclass
class OrphanReport:
    """What `recover_orphans` did: the files it published, the lines they hold, the last lines without
    a newline (quarantined by ingestion as `invalid_json` when cut), the empty orphans it removed."""

    recovered: list[Path] = field(default_factory=list)
    lines: int = 0
    partial_lines: int = 0
    removed_empty: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.recovered)} orphan landing file(s) published ({self.lines} lines, "
            f"{self.partial_lines} without a final newline), {self.removed_empty} empty removed"
        )


def recover_orphans(
    home: FlywheelHome, older_than_s: float, days: Iterable[str] | None = None, *, now: float | None = None
) -> OrphanReport:
    """Publish the `.tmp` landing files of both streams (of `days`, else every day) not modified for
    `older_than_s` seconds: a writer killed before completing them. Safe beside live writers, whose
    files are never that old; should one still be writing, its later records land in the published file
    (whose size change makes the landing sensor run the day again)."""
    now = time.time() if now is None else now
    report = OrphanReport()
    for stream in (INTERACTIONS, FEEDBACK):
        for day in landing_days(home, stream) if days is None else days:
            folder = home.landing(stream, day)
            if not folder.is_dir():
                continue
            for tmp in sorted(folder.glob(".*.tmp")):
                try:
                    stat = tmp.stat()
                    if not tmp.is_file() or now - stat.st_mtime < older_than_s:
                        continue
                    if stat.st_size == 0:
                        tmp.unlink()
                        report.removed_empty += 1
                        continue
                    final = (
                        folder / f"{tmp.name[1:].removesuffix('.tmp').removesuffix('.jsonl')}.recovered.jsonl"
                    )
                    if final.exists():
                        continue
                    os.rename(tmp, final)
                except FileNotFoundError:  # completed by its writer, or recovered by another process
                    continue
                with open(final, "rb") as fh:
                    lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
                    fh.seek(-1, os.SEEK_END)
                    cut = fh.read(1) != b"\n"
                report.recovered.append(final)
                report.lines += lines + cut
                report.partial_lines += cut
    return report
