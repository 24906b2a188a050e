"""Dataset files: read and validate every row (`load_file`), convert a whole file, write rows atomically.

Files are JSONL or one JSON array (told apart by content); `write_rows` writes a JSON array for a
``.json`` target, else JSONL. Rows read = rows valid + rows invalid, always: a bad JSONL line is a
row with `invalid_json`, never dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.core.errors import require
from flywheel.core.storage import write_jsonl, write_text
from flywheel.formats.chatml import from_chatml_rows
from flywheel.formats.detect import detect_format
from flywheel.formats.errors import ConversionError, ConversionRefused, FormatFileError, MixedFormatError
from flywheel.formats.names import DEFAULT_MAX_TOKENS, INVALID_JSON, check_format
from flywheel.formats.validate import RowResult, validate_row


@dataclass
class FileReport:
    """All rows of one file with their reasons."""

    path: str
    format: str
    rows: list[RowResult]

    @property
    def valid_rows(self) -> list[RowResult]:
        return [r for r in self.rows if r.ok]

    @property
    def invalid_rows(self) -> list[RowResult]:
        return [r for r in self.rows if not r.ok]

    def summary(self) -> dict[str, Any]:
        """format, rows, valid, invalid and per-reason counts of errors and warnings."""
        errors: Counter[str] = Counter()
        warnings: Counter[str] = Counter()
        valid = 0
        for r in self.rows:
            errors.update(r.errors)
            warnings.update(r.warnings)
            valid += r.ok
        return {
            "path": self.path,
            "format": self.format,
            "rows": len(self.rows),
            "valid": valid,
            "invalid": len(self.rows) - valid,
            "errors": dict(errors.most_common()),
            "warnings": dict(warnings.most_common()),
        }


# --- reading files -------------------------------------------------------------------------------
def _parse_file(path: Path) -> tuple[list[Any], list[int | None], list[tuple[int, str]]]:
    """Rows, their 1-based lines (None in JSON arrays) and the JSONL lines that were not JSON."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatFileError(path, f"not valid UTF-8 (byte {exc.start})", line=line) from exc
    stripped = text.lstrip()
    if not stripped:
        raise FormatFileError(path, "empty file")
    if stripped[0] == "[":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": JSONL whose lines are arrays, read below
                raise FormatFileError(path, f"not a valid JSON array (truncated?): {exc.msg} at column {exc.colno}",
                                      line=exc.lineno) from exc
        else:
            if not rows:
                raise FormatFileError(path, "empty JSON array")
            return rows, [None] * len(rows), []
    rows, lines, bad = [], [], []
    for number, line_text in enumerate(text.splitlines(), start=1):
        if not line_text.strip():
            continue
        try:
            rows.append(json.loads(line_text))
        except json.JSONDecodeError:
            rows.append(_BAD_JSON)
            bad.append((len(rows) - 1, line_text))
        lines.append(number)
    if bad and len(bad) == len(rows):
        try:  # a pretty-printed single JSON value is not a dataset
            whole = json.loads(text)
        except json.JSONDecodeError:
            raise FormatFileError(path, "no line is valid JSON (expected JSONL or a JSON array)") from None
        raise FormatFileError(path, f"a single JSON {type(whole).__name__}; expected a JSON array or JSONL")
    return rows, lines, bad


_BAD_JSON = object()


def load_file(
    path: str | Path,
    fmt: str = "auto",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    token_counter: Callable[[str], int] | None = None,
) -> FileReport:
    """Read a JSONL file or a JSON array in one of the formats, detect the format and validate every row.

    Raises `FormatFileError` for an unreadable, empty, truncated or wrongly-typed file and
    `MixedFormatError` for a file that mixes formats; bad JSONL lines are rows with `invalid_json`.
    """
    path = Path(path)
    if fmt != "auto":
        check_format(fmt)
    rows, lines, bad = _parse_file(path)
    detected: str | None
    try:
        detected = detect_format(rows, path, lines)
    except MixedFormatError:
        raise
    except FormatFileError:
        if fmt == "auto":
            raise
        detected = None
    if fmt != "auto" and detected is not None and detected != fmt:
        raise FormatFileError(path, f"rows are {detected}, not {fmt}")
    file_fmt = fmt if fmt != "auto" else detected
    require(file_fmt is not None, "a file format was detected or given")
    bad_lines = dict(bad)
    results: list[RowResult] = []
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        if row is _BAD_JSON:
            r = RowResult(index=i, line=line, raw=bad_lines[i], errors=[INVALID_JSON],
                          details={INVALID_JSON: "the line is not valid JSON"})
        else:
            r = validate_row(row, file_fmt, max_tokens, token_counter, index=i, line=line)
        results.append(r)
    return FileReport(path=str(path), format=file_fmt, rows=results)


# --- converting files ----------------------------------------------------------------------------
@dataclass
class ConversionReport:
    """What `convert_file` read, wrote and left out (invalid rows, with their reasons)."""

    source: FileReport
    target: str
    to: str
    written: int
    rows_out: int  # output rows (more than `written` source rows when split)

    @property
    def skipped(self) -> list[RowResult]:
        return self.source.invalid_rows

    def summary(self) -> dict[str, Any]:
        return {**self.source.summary(), "to": self.to, "target": self.target,
                "written": self.written, "rows_out": self.rows_out, "skipped": len(self.skipped)}


def convert_report(report: FileReport, to: str, multi_turn: str = "refuse") -> list[dict[str, Any]]:
    """Output rows of `to` for the valid rows of `report`; `ConversionRefused` if any row would lose data."""
    check_format(to)
    out: list[dict[str, Any]] = []
    refused: Counter[str] = Counter()
    first: dict[str, str] = {}
    for r in report.valid_rows:
        require(r.messages is not None, "a valid row has messages")
        try:
            out.extend(from_chatml_rows(r.messages, to, r.extras, multi_turn))
        except ConversionError as exc:
            refused[exc.reason] += 1
            first.setdefault(exc.reason, f"{r.where}: {exc.detail}")
    if refused:
        raise ConversionRefused(report.path, to, dict(refused), first)
    return out


def write_rows(rows: list[dict[str, Any]], target: str | Path) -> Path:
    """Write rows atomically: a JSON array for a `.json` target, else JSONL."""
    target = Path(target)
    if target.suffix.lower() == ".json":
        return write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", target)
    return write_jsonl(rows, target)


def convert_file(
    path: str | Path,
    target: str | Path,
    to: str,
    fmt: str = "auto",
    multi_turn: str = "refuse",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    token_counter: Callable[[str], int] | None = None,
) -> ConversionReport:
    """Convert a file to `to`, writing only valid rows (atomically); nothing is written when refused."""
    report = load_file(path, fmt, max_tokens, token_counter)
    rows = convert_report(report, to, multi_turn)
    write_rows(rows, target)
    return ConversionReport(source=report, target=str(target), to=to,
                            written=len(report.valid_rows), rows_out=len(rows))
