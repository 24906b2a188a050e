"""Importers: logs of the tools teams already use -> landing records (`flywheel import KIND FILE`).

One module per source, each with `KIND` and `rows(path)`; `common.land_rows` checks, deduplicates
and lands them (idempotent; bad rows quarantined with file, row and reason). The capture asset then
reads the landing files as it reads the SDK's.
"""

from __future__ import annotations

from pathlib import Path

from flywheel.capture.importers import langfuse, mlflow, openai_chat, openinference, otlp_json
from flywheel.capture.importers.common import ImportReport, land_rows
from flywheel.config import CaptureConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome

IMPORTERS = {m.KIND: m for m in (openai_chat, otlp_json, langfuse, openinference, mlflow)}
KINDS = tuple(IMPORTERS)


def import_file(home: FlywheelHome, kind: str, path: str | Path, config: CaptureConfig | None = None) -> ImportReport:
    """Import one export file of `kind` (see KINDS) into the landing zone; what it did."""
    importer = IMPORTERS.get(kind)
    if importer is None:
        raise InputError(f"unknown import kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return land_rows(home, kind, path, importer.rows(path), (config or CaptureConfig()).max_field_chars)
