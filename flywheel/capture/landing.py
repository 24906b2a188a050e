"""Reading the landing zone: completed files, their non-blank lines (whole or in pieces), and what
a day's capture run reads (for the landing sensor).

Blank lines are not rows: JSONL readers skip them, so they are counted apart (`blank_lines`).
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flywheel.capture.records import FEEDBACK, INTERACTIONS, next_day
from flywheel.core.storage import FlywheelHome


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
        with open(path, "rb") as fh:
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


@dataclass(frozen=True)
class Piece:
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
        return non_blank_lines(io.BytesIO(data), self.file_index, self.path, self.first_line, counts)


def split_landing_files(files: Sequence[Path], piece_bytes: int) -> Iterator[Piece]:
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
