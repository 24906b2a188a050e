"""The errors of reading and converting datasets; all are `InputError`s (so also `ValueError`s).

- `FormatFileError`: a file that cannot be read as a dataset at all; `MixedFormatError` one that
  mixes formats.
- `RowReasonError`: one row with a named reason (`reason`, `detail`): `RowFormatError` when the row
  holds no conversation of its format, `ConversionError` when the target format cannot carry it.
- `ConversionRefused`: a whole file's conversion refused, with the count of each reason.
"""

from __future__ import annotations

from pathlib import Path

from flywheel.core.errors import InputError
from flywheel.formats.names import MULTI_TURN


class FormatFileError(InputError):
    """A file that cannot be read as a dataset at all (unreadable, not JSON, empty, wrong format)."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


class MixedFormatError(FormatFileError):
    """A file whose rows are in more than one format; `first_rows` maps format -> first row (1-based)."""

    def __init__(self, path: str | Path, first_rows: dict[str, int], unit: str = "row") -> None:
        self.first_rows = dict(first_rows)
        listing = ", ".join(f"{fmt} first at {unit} {n}" for fmt, n in self.first_rows.items())
        super().__init__(path, f"mixes formats ({listing}); one format per dataset, split the file")


class RowReasonError(InputError):
    """One row that cannot be used as asked: `reason` is a reason code of `flywheel.formats.names`."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class RowFormatError(RowReasonError):
    """A row that cannot be read as a conversation of its format."""


class ConversionError(RowReasonError):
    """A conversion the target format cannot carry without losing information."""


class ConversionRefused(InputError):
    """A file conversion refused as a whole: rows the target cannot carry; `reasons` counts them."""

    def __init__(self, path: str, to: str, reasons: dict[str, int], first: dict[str, str]) -> None:
        self.path, self.to, self.reasons, self.first = path, to, reasons, first
        parts = "; ".join(f"{n} rows {reason} (first at {first[reason]})" for reason, n in reasons.items())
        hint = " Pass --multi-turn history|last|split to say how." if MULTI_TURN in reasons else ""
        super().__init__(f"{path}: cannot convert to {to} without losing information: {parts}.{hint}")
