"""The fixed eval set: the user's eval file read into example rows with slice tags, its description
(`current.json`: content hash, items per slice), and its items as (prompt, reference) pairs.

The file is read by curation's source loader (`flywheel.curation.sources.load_source_examples`), so
an eval file and a seed file accept the same formats and quarantine a bad row for the same reasons;
the eval set adds two refusals: a conversation without a final reference answer and a duplicate.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from flywheel.capture.pii import TrainingTextScrubber, redact_quarantine_rows
from flywheel.config import PiiConfig
from flywheel.core.errors import InputError
from flywheel.core.records import EXAMPLE_SCHEMA, examples_table
from flywheel.core.storage import FlywheelHome, read_table
from flywheel.core.text import final_answer, last_user_text
from flywheel.curation.sources import load_source_examples
from flywheel.models.artifact import eval_set_hash

NO_SLICE = "(none)"
EVAL_SET = ("fixed_eval_set", "current")  # warehouse/fixed_eval_set/current.parquet (+ current.json)


class EvalSetError(InputError):
    """The eval file cannot be used at all (missing, unreadable, mixed formats, not materialized)."""


@dataclass
class EvalSetLoad:
    """An eval file read into EXAMPLE_SCHEMA rows plus the rows that could not be used (QUARANTINE_SCHEMA
    dicts with reasons)."""

    path: Path
    format: str
    table: pa.Table
    invalid: list[dict[str, Any]]
    pii_scan: dict[str, Any] | None = None  # what the PII scan did (`TextScan.summary()`), None: not scanned

    @property
    def read(self) -> int:
        return self.table.num_rows + len(self.invalid)


def load_eval_set(path: str | Path, max_tokens: int = 4096, pii: PiiConfig | None = None) -> EvalSetLoad:
    """Read the user's eval file (ChatML, ShareGPT or Alpaca) into example rows with their slice.

    Each row needs a final assistant turn (the reference answer); rows that fail are returned in
    `invalid` with file, line and reason, never dropped silently. With `pii` (`capture.pii`), the
    rows are scrubbed of PII (patterns and NER, `TrainingTextScrubber`) and the invalid rows redacted."""
    path = Path(path)
    if not path.exists():
        raise EvalSetError(f"{path}: eval set file not found (config evaluation.eval_set)")
    loaded = load_source_examples([path], "human", max_tokens=max_tokens)
    fmt = loaded.files[0]["format"] if loaded.files else None
    if fmt is None:
        detail = loaded.quarantine[0]["detail"] if loaded.quarantine else "unreadable"
        message = detail if detail.startswith(str(path)) else f"{path}: {detail}"
        raise EvalSetError(f"{message} (the fixed eval set needs 100-200 examples, each with a `slice`)")
    rows: list[dict[str, Any]] = []
    invalid = list(loaded.quarantine)
    seen: dict[str, int] = {}
    for ex in loaded.examples:
        line = int(json.loads(ex["lineage"]).get("row") or 0)
        reason = None
        if not final_answer(ex["messages"]):
            reason, detail = "no_reference", "the last turn must be the assistant's reference answer"
        elif ex["example_id"] in seen:
            reason, detail = "duplicate", f"same conversation as line {seen[ex['example_id']]}"
        if reason is None:
            seen[ex["example_id"]] = line
            rows.append(ex)
            continue
        raw = json.dumps({"messages": ex["messages"], "slice": ex["slice"]}, ensure_ascii=False)
        invalid.append({"source_file": str(path), "line": line, "reason": reason, "detail": detail, "raw": raw})
    invalid.sort(key=lambda r: r["line"])
    if pii is None:
        return EvalSetLoad(path=path, format=fmt, table=examples_table(rows), invalid=invalid)
    scrubber = TrainingTextScrubber(pii)
    scrubber.scrub_rows(rows)
    return EvalSetLoad(path=path, format=fmt, table=examples_table(rows), invalid=redact_quarantine_rows(invalid),
                       pii_scan=scrubber.scan.summary())


def slice_counts(table: pa.Table) -> dict[str, int]:
    """Items per slice (untagged items under `(none)`)."""
    return dict(sorted(Counter(s or NO_SLICE for s in table.column("slice").to_pylist()).items()))


def eval_set_info(table: pa.Table, eval_set_version: int) -> dict[str, Any]:
    """The `current.json` of the fixed eval set."""
    return {
        "content_hash": eval_set_hash(table),
        "eval_set_version": eval_set_version,
        "items": table.num_rows,
        "slices": slice_counts(table),
    }


def eval_set_table(home: FlywheelHome) -> pa.Table:
    """The materialized fixed eval set (`warehouse/fixed_eval_set/current.parquet`)."""
    path = home.warehouse(*EVAL_SET)
    if not path.exists():
        raise EvalSetError(f"{path}: fixed eval set not materialized yet")
    return read_table(path).select(EXAMPLE_SCHEMA.names).cast(EXAMPLE_SCHEMA)


def read_eval_set_info(home: FlywheelHome) -> dict[str, Any]:
    """`warehouse/fixed_eval_set/current.json`."""
    path = home.warehouse(EVAL_SET[0]) / "current.json"
    if not path.exists():
        raise EvalSetError(f"{path}: fixed eval set not materialized yet")
    return json.loads(path.read_text(encoding="utf-8"))


# --- items -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalItem:
    example_id: str
    slice: str
    prompt: list[dict[str, str]]
    reference: str

    @property
    def question(self) -> str:
        return last_user_text(self.prompt)


def eval_items(table: pa.Table) -> list[EvalItem]:
    """Eval rows as (prompt = every turn but the last, reference = the final assistant turn)."""
    items = []
    for row in table.select(["example_id", "messages", "slice"]).to_pylist():
        msgs = row["messages"]
        items.append(EvalItem(row["example_id"], row["slice"] or NO_SLICE, msgs[:-1], final_answer(msgs)))
    return items
