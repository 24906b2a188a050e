"""Review batches: the weekly batch's table and files and its registration in the decision store, and
sample batches of any example source (a synthetic file, a dataset version's review sample).

A weekly batch is registered in the decision store (`flywheel.labeling.store`) and written as
`warehouse/labeling_batch/<week>.parquet` and `labeling/<week>/batch.jsonl`. Any other batch of review
items is built with `review_item` and registered with `ReviewStore.register_batch`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from flywheel.capture.pii import TrainingTextScrubber
from flywheel.config import PiiConfig
from flywheel.core.records import MESSAGES_TYPE, example_id
from flywheel.core.storage import (
    FlywheelHome,
    duckdb_connection,
    read_table,
    storage_path,
    write_jsonl,
    write_parquet,
)
from flywheel.core.text import last_user_text
from flywheel.formats import load_file
from flywheel.labeling.candidates import input_key
from flywheel.labeling.decisions import export_rows, resolve_decisions
from flywheel.labeling.selection import BatchSelection
from flywheel.labeling.store import ReviewError, ReviewStore

SAMPLE_KIND = "sample"
BATCH_ASSET = "labeling_batch"

BATCH_SCHEMA = pa.schema(
    [
        ("batch_id", pa.string()),
        ("item_id", pa.string()),
        ("position", pa.int64()),
        ("kind", pa.string()),  # correction | negative | low_confidence | control | sample | conflict
        ("interaction_id", pa.string()),
        ("ts", pa.string()),
        ("session_id", pa.string()),
        ("model_version", pa.string()),
        ("messages", MESSAGES_TYPE),  # the prompt (full conversation before the answer)
        ("input_text", pa.string()),
        ("output", pa.string()),  # the model's answer
        ("correction_text", pa.string()),  # the user's correction, if any
        ("signal", pa.string()),
        ("evidence", pa.string()),
        ("weight", pa.float64()),
        ("confidence", pa.float64()),
        ("duplicate_count", pa.int64()),  # interactions collapsed into this item (itself included)
        ("duplicate_ids", pa.list_(pa.string())),
        ("input_key", pa.string()),  # normalized input
        ("source", pa.string()),  # where a sample item came from (file or table), else null
        ("lineage", pa.string()),  # JSON: sample items keep their example's provenance
        ("rubric", pa.string()),
    ]
)



# --- the weekly batch -----------------------------------------------------------------------------
def batch_table(items: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{n: it.get(n) for n in BATCH_SCHEMA.names} for it in items], schema=BATCH_SCHEMA)


def write_batch_files(home: FlywheelHome, batch_id: str, items: Sequence[dict[str, Any]]) -> tuple[Path, Path]:
    """`warehouse/labeling_batch/<batch>.parquet` and `labeling/<batch>/batch.jsonl` (atomic)."""
    parquet = write_parquet(batch_table(items), home.warehouse(BATCH_ASSET, batch_id))
    jsonl = write_jsonl(export_rows(items), home.labeling(batch_id) / "batch.jsonl")
    return parquet, jsonl


def scrub_items(items: Sequence[dict[str, Any]], pii: PiiConfig) -> dict[str, Any]:
    """PII patterns and NER (`capture.pii`) over what reviewers will see, in place: the prompt, the
    answer and the user's correction. Returns the scan's summary (did NER run, what was redacted)."""
    scrubber = TrainingTextScrubber(pii)
    scrubber.scrub_rows(items, text_keys=("input_text", "output", "correction_text"))
    return scrubber.scan.summary()


def register_selection(store: ReviewStore, selection: BatchSelection, rubric: str) -> bool:
    """Register a weekly batch in the decision store. A batch whose review has begun is kept as it is
    (returns False); its stored items then replace `selection.items`."""
    if store.has_batch(selection.batch_id) and store.decided_item_ids(selection.batch_id):
        selection.items = store.items(selection.batch_id)
        return False
    store.register_batch(selection.batch_id, selection.items, kind="weekly", rubric=rubric, meta=selection.metadata())
    return True


# --- review items of any source ------------------------------------------------------------------
def review_item(
    batch_id: str,
    item_id: str,
    position: int,
    kind: str,
    prompt: list[dict[str, Any]],
    output: str,
    *,
    key: str,
    model_version: str | None = None,
    evidence: str | None = None,
    weight: float = 1.0,
    source: str | None = None,
    lineage: dict[str, Any] | None = None,
    rubric: str = "",
) -> dict[str, Any]:
    """One review item that is not production traffic (no interaction, no signal): a BATCH_SCHEMA row
    showing `prompt` and the answer `output`. `key` is its input key ('' holds no production input back
    from weekly review); `lineage` is kept as JSON."""
    return {
        "batch_id": batch_id, "item_id": item_id, "position": position, "kind": kind, "interaction_id": None,
        "ts": None, "session_id": None, "model_version": model_version, "messages": prompt,
        "input_text": last_user_text(prompt), "output": output, "correction_text": None, "signal": "none",
        "evidence": evidence, "weight": weight, "confidence": None, "duplicate_count": 1, "duplicate_ids": [],
        "input_key": key, "source": source,
        "lineage": None if lineage is None else json.dumps(lineage, sort_keys=True, default=str), "rubric": rubric,
    }


# --- sample batches of any example source --------------------------------------------------------
def create_sample_batch(
    store: ReviewStore,
    batch_id: str,
    examples_rows: Sequence[dict[str, Any]],
    *,
    n: int | None = None,
    seed: int = 0,
    rubric: str = "",
    source: str | None = None,
    kind: str = SAMPLE_KIND,
    hold_inputs: bool = True,
    meta: dict[str, Any] | None = None,
    pii: PiiConfig | None = None,
) -> list[dict[str, Any]]:
    """Send a seeded random sample of `n` example rows (all when None) for review as batch `batch_id`.

    Each row needs ChatML `messages` whose last turn is the assistant's answer (EXAMPLE_SCHEMA rows
    fit; `example_id`, `source`, `generator`, `lineage` are kept as the item's lineage). Rows with the
    same content are sampled once. Returns the items (item_id = the example's content hash).
    `hold_inputs=False` gives the items no input key, so they never hold production inputs back from a
    weekly batch (a generated file's admission sample); `kind` and `meta` label the batch. With `pii`
    (`capture.pii`) the items are scrubbed of PII first (`scrub_items`; its scan goes in the batch's meta).
    """
    candidates: dict[str, tuple[int, dict[str, Any]]] = {}
    for idx, row in enumerate(examples_rows):
        msgs = row.get("messages") or []
        if not msgs or msgs[-1].get("role") != "assistant":
            raise ReviewError(f"row {idx}: expected ChatML messages ending with the assistant's answer")
        candidates.setdefault(example_id(msgs), (idx, row))
    keys = sorted(candidates)
    random.Random(f"{seed}:{batch_id}").shuffle(keys)
    chosen = sorted(keys[: n if n is not None else len(keys)], key=lambda k: candidates[k][0])
    items = []
    for k in chosen:
        idx, row = candidates[k]
        msgs = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        prompt = msgs[:-1]
        lineage = {"row": idx, "example_id": row.get("example_id") or k, "source": row.get("source"),
                   "generator": row.get("generator"), "lineage": row.get("lineage"), "file": source}
        items.append(review_item(
            batch_id, k, len(items), SAMPLE_KIND, prompt, msgs[-1]["content"], key=input_key(prompt) if hold_inputs else "",
            model_version=row.get("generator"), weight=float(row.get("weight") or 1.0),
            source=row.get("source") or source, lineage=lineage, rubric=rubric,
        ))
    scan = scrub_items(items, pii) if pii is not None else None
    store.register_batch(batch_id, items, kind=kind, rubric=rubric, source=source,
                         meta={**(meta or {}), "rows": len(examples_rows), "distinct": len(candidates),
                               "sampled": len(items), "seed": seed, "pii_scan": scan})
    return items


def sample_batch_results(store: ReviewStore, batch_id: str) -> list[dict[str, Any]]:
    """Per item of a (sample) batch: the item, its resolved verdict (None while undecided), text, reason."""
    resolved = resolve_decisions(store.decisions(batch_id))
    out = []
    for it in store.items(batch_id):
        r = resolved.get(it["item_id"])
        out.append({
            "item_id": it["item_id"], "lineage": json.loads(it["lineage"]) if it.get("lineage") else None,
            "messages": it["messages"], "output": it["output"], "verdict": r.verdict if r else None,
            "text": r.text if r else None, "reason": r.reason if r else None,
            "reviewers": list(r.reviewers) if r else [],
        })
    return out


def load_example_source(home: FlywheelHome, source: str) -> list[dict[str, Any]]:
    """Example rows from a Parquet or JSON/JSONL file (ChatML, ShareGPT or Alpaca) or a warehouse table
    name (every Parquet file under `warehouse/<name>/`)."""
    p = storage_path(source)
    if not p.exists():
        table_dir = home.warehouse(source)
        files = sorted(table_dir.glob("*.parquet")) if table_dir.is_dir() else []
        if not files:
            raise FileNotFoundError(f"{source}: neither a file nor a warehouse table with Parquet files")
        con = duckdb_connection(home=home)
        try:
            sql = "SELECT * FROM read_parquet(?, union_by_name = true)"
            return con.sql(sql, params=[[str(f) for f in files]]).to_arrow_table().to_pylist()
        finally:
            con.close()
    if p.suffix == ".parquet":
        return read_table(p).to_pylist()
    report = load_file(p)
    return [{"messages": r.messages, "lineage": json.dumps({"file": str(p), "row": r.index})}
            for r in report.rows if r.ok and r.messages]
