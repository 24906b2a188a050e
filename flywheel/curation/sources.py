"""Example sources: the user's seed / synthetic / distilled files as EXAMPLE_SCHEMA rows.

Bad rows are quarantined with file, row and reason (read = accepted + quarantined). Each source is
written to `warehouse/<table>/all.parquet` (its quarantine beside it under `quarantine/`), and a
dataset build reads those tables back with `read_examples`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel import formats
from flywheel.capture.pii import redact_quarantine_rows
from flywheel.config import ProjectConfig
from flywheel.core.errors import InputError, require
from flywheel.core.records import EXAMPLE_SCHEMA, examples_table, make_example, quarantine_table
from flywheel.core.storage import FlywheelHome, read_parquet, write_parquet
from flywheel.curation.context import EvalItems


@dataclass(frozen=True)
class SourceSpec:
    """One example source: its `sources.<key>` file list, the example `source` it yields, and the
    row keys naming the model that wrote each answer (required when given)."""

    config_key: str
    source: str
    generator_keys: tuple[str, ...] = ()


SOURCE_TABLES: dict[str, SourceSpec] = {
    "seed_examples": SourceSpec("seed", "human"),
    "synthetic_examples": SourceSpec("synthetic", "synthetic", ("generator",)),
    "distilled_examples": SourceSpec("distilled", "distilled", ("teacher", "generator")),
}
"""The source tables a dataset build reads (`warehouse/<name>/all.parquet`), by name."""

LINEAGE_KEYS = ("prompt_version", "prompt_sha", "generator_family", "teacher_family", "interaction_id")
"""Row keys of generated files kept in an example's lineage (how and from what it was generated)."""


@dataclass
class SourceLoad:
    """The examples accepted from a source's files and the rows quarantined (read = accepted + quarantined)."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def read(self) -> int:
        return sum(f["read"] for f in self.files)

    def quarantine_reasons(self) -> dict[str, int]:
        return dict(Counter(q["reason"] for q in self.quarantine).most_common())


def _raw_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)


def _row_value(row: formats.RowResult, keys: Sequence[str]) -> Any:
    """The first non-empty of `keys` among the row's keys outside its format."""
    sources = [row.extras or {}, row.raw if isinstance(row.raw, dict) else {}]
    for key in keys:
        for src in sources:
            v = src.get(key)
            if v not in (None, ""):
                return v
    return None


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (hex)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_source_examples(paths: Sequence[str | Path], source: str, max_tokens: int = 4096,
                         generator_keys: Sequence[str] = ()) -> SourceLoad:
    """Read example files (ChatML, ShareGPT or Alpaca) as EXAMPLE_SCHEMA rows of `source`.

    With `generator_keys` every row must name the model that wrote it (first non-empty key): a file
    where no row does is refused (every row quarantined as `file_without_generator`), single rows
    without one are quarantined as `missing_generator`. An unreadable or mixed-format file counts as
    one read record and is quarantined with line 0. Optional per-row keys: `slice`, `weight`, `id` and
    LINEAGE_KEYS.
    Each row's lineage names its file, row, format and the file's content hash (`file_sha256`: the
    admission gate reviews a file's content once).
    """
    out = SourceLoad()
    for p in paths:
        path = Path(p)
        try:
            report = formats.load_file(path, max_tokens=max_tokens)
        except (formats.FormatFileError, OSError) as exc:
            reason = "mixed_formats" if isinstance(exc, formats.MixedFormatError) else "unreadable_file"
            out.quarantine.append({"source_file": str(path), "line": 0, "reason": reason, "detail": str(exc), "raw": ""})
            out.files.append({"file": str(path), "format": None, "read": 1, "accepted": 0, "quarantined": 1})
            continue
        digest = file_sha256(path)
        generators = [(_row_value(r, generator_keys) if generator_keys else None) for r in report.rows]
        file_has_generator = any(g is not None for g in generators) or not generator_keys
        accepted = 0
        for row, gen in zip(report.rows, generators, strict=True):
            line = row.line if row.line is not None else row.index + 1
            reason, detail = None, ""
            if not row.ok:
                reason = row.errors[0]
                detail = "; ".join(f"{e}: {row.details.get(e, '')}" for e in row.errors)
            elif not file_has_generator:
                reason, detail = "file_without_generator", f"no row names the model that wrote it (keys: {', '.join(generator_keys)})"
            elif generator_keys and gen is None:
                reason, detail = "missing_generator", f"row names no model (keys: {', '.join(generator_keys)})"
            if reason:
                out.quarantine.append({"source_file": str(path), "line": line, "reason": reason,
                                       "detail": f"{path}: {row.where}: {detail}", "raw": _raw_text(row.raw)})
                continue
            weight = _row_value(row, ("weight",))
            slice_tag = _row_value(row, ("slice",))
            lineage = {"file": str(path), "row": line, "format": report.format, "file_sha256": digest}
            for key in ("id", *LINEAGE_KEYS):
                if (value := _row_value(row, (key,))) is not None:
                    lineage[key] = value
            out.examples.append(make_example(
                row.messages or [], source, generator=None if gen is None else str(gen), lineage=lineage,
                slice=str(slice_tag) if slice_tag is not None else None,
                weight=float(weight) if isinstance(weight, (int, float)) else 1.0,
            ))
            accepted += 1
        out.files.append({"file": str(path), "format": report.format, "read": len(report.rows), "accepted": accepted,
                          "quarantined": len(report.rows) - accepted, "sha256": digest})
    require(out.read == len(out.examples) + len(out.quarantine),
            f"source {source}: {out.read} rows read but {len(out.examples)} accepted + {len(out.quarantine)} quarantined")
    return out


def source_files(project: ProjectConfig, spec: SourceSpec, home: FlywheelHome | None = None) -> list[Path]:
    """The files of a source: those `sources.<key>` lists, then (with `home`) the generation runs'
    `generated/<key>/*.jsonl` (flywheel.generation writes synthetic and distilled runs there)."""
    files = [project.resolve(f) for f in getattr(project.sources, spec.config_key)]
    if home is not None:
        files += sorted(home.generated(spec.config_key).glob("*.jsonl"))
    return files


def write_source_examples(project: ProjectConfig, home: FlywheelHome, table: str) -> tuple[SourceLoad, Path]:
    """Load the files of source table `table` (a key of SOURCE_TABLES; generated runs included) and write its
    examples to `warehouse/<table>/all.parquet` and its rejected rows to `quarantine/<table>/all.parquet`."""
    spec = SOURCE_TABLES.get(table)
    if spec is None:
        raise InputError(f"unknown example source table {table!r}; expected one of {sorted(SOURCE_TABLES)}")
    files = source_files(project, spec, home)
    load = load_source_examples(files, spec.source, max_tokens=project.curation.max_tokens,
                                generator_keys=spec.generator_keys)
    out = write_parquet(examples_table(load.examples), home.warehouse(table, "all"))
    write_parquet(quarantine_table(redact_quarantine_rows(load.quarantine)), home.quarantine(table, "all"))
    return load, out


# --- reading the inputs of a build -------------------------------------------------------------------
def read_examples(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """EXAMPLE_SCHEMA rows of the given Parquet files (missing files are skipped)."""
    return read_parquet(paths, schema=EXAMPLE_SCHEMA).to_pylist()


def read_eval_items(path: Path) -> EvalItems:
    """The fixed eval set's rows at `path` (rows None when the file does not exist)."""
    return EvalItems(read_examples([path]) if path.exists() else None, str(path))
