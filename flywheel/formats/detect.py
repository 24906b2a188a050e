"""Which format a row, and a whole file, is written in (one format per file)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flywheel.formats.errors import FormatFileError, MixedFormatError
from flywheel.formats.names import ALPACA, CHATML, SHAREGPT


def detect_row_format(row: Any) -> str | None:
    """The format one row is written in, or None when it is not an object of a known shape."""
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        return CHATML
    if "conversations" in row:
        return SHAREGPT
    if "instruction" in row or ("output" in row and "input" in row):
        return ALPACA
    return None


def detect_format(rows: Iterable[Any], path: str | Path = "<rows>", lines: Sequence[int | None] | None = None) -> str:
    """The one format of `rows`; `MixedFormatError` when they mix formats, `FormatFileError` when none is known."""
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        fmt = detect_row_format(row)
        if fmt is not None and fmt not in first:
            line = lines[i] if lines is not None else None
            first[fmt] = line if line is not None else i + 1
    if len(first) > 1:
        unit = "line" if lines is not None and any(x is not None for x in lines) else "row"
        raise MixedFormatError(path, first, unit=unit)
    if not first:
        raise FormatFileError(path, "no row is in a known format (ChatML `messages`, ShareGPT "
                                    "`conversations` or Alpaca `instruction`/`output`)")
    return next(iter(first))
