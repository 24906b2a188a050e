"""A week of synthetic traffic for the labeling tests: capture's daily Parquet files, and small batches."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from flywheel.config import LabelingConfig, LabelingQuotas
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.labeling.selection import select_batch
from flywheel.labeling.store import ReviewStore

WEEK = "2026-11-16"

INTERACTIONS_SCHEMA = pa.schema([
    ("interaction_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("session_id", pa.string()),
    ("user_id", pa.string()), ("model_version", pa.string()),
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("input_text", pa.string()), ("output", pa.string()), ("latency_ms", pa.float64()),
    ("confidence", pa.float64()), ("metadata", pa.string()),
])
SIGNALS_SCHEMA = pa.schema([
    ("interaction_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("session_id", pa.string()),
    ("signal", pa.string()), ("weight", pa.float64()), ("correction_text", pa.string()), ("evidence", pa.string()),
])
WEIGHTS = {"correction": 3.0, "negative": 2.0, "positive": 1.0, "none": 0.5}


def interaction(iid: str, day: int, text: str, signal: str = "none", confidence: float | None = None,
                correction: str | None = None, output: str | None = None) -> tuple[dict, dict]:
    ts = datetime(2026, 11, 16, 9, tzinfo=UTC) + timedelta(days=day, minutes=int(iid.split("-")[-1]) % 600)
    i = {"interaction_id": iid, "ts": ts, "session_id": f"s-{iid}", "user_id": "u1", "model_version": "m1",
         "messages": [{"role": "system", "content": "You are a support bot."}, {"role": "user", "content": text}],
         "input_text": text, "output": output or f"answer to {text}", "latency_ms": 12.0, "confidence": confidence,
         "metadata": "{}"}
    s = {"interaction_id": iid, "ts": ts, "session_id": f"s-{iid}", "signal": signal, "weight": WEIGHTS[signal],
         "correction_text": correction, "evidence": {"correction": "correction", "negative": "thumbs_down",
                                                     "positive": "copy", "none": ""}[signal]}
    return i, s


def write_week(home: FlywheelHome, records: list[tuple[dict, dict]]) -> None:
    """Write the capture stage's daily Parquet files (the team contract) for the records' days."""
    by_day: dict[str, list[tuple[dict, dict]]] = {}
    for i, s in records:
        by_day.setdefault(i["ts"].date().isoformat(), []).append((i, s))
    for day, recs in by_day.items():
        write_parquet(pa.Table.from_pylist([i for i, _ in recs], schema=INTERACTIONS_SCHEMA), home.warehouse("interactions", day))
        write_parquet(pa.Table.from_pylist([s for _, s in recs], schema=SIGNALS_SCHEMA), home.warehouse("interaction_signals", day))


def words(k: int) -> str:
    """A distinct phrase per k (inputs that are not near-duplicates of each other)."""
    return hashlib.sha1(str(k).encode()).hexdigest()[:20]


def traffic() -> list[tuple[dict, dict]]:
    recs = []
    n = 0
    for k in range(12):  # corrections
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"export {words(k)} to csv", "correction",
                                correction=f"Go to Reports > Export > CSV ({k})."))
    for _ in range(3):  # near-duplicates of the first correction
        n += 1
        recs.append(interaction(f"i-{n}", 2, f"Export {words(0).upper()} to CSV??", "negative"))
    for k in range(10):  # negatives
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"crash on {words(100 + k)}", "negative"))
    for k in range(8):  # low confidence
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"voucher {words(200 + k)}", "none", confidence=0.2))
    for k in range(40):  # controls
        n += 1
        recs.append(interaction(f"i-{n}", k % 7, f"opening time {words(300 + k)}", "positive" if k % 2 else "none",
                                confidence=0.9))
    return recs


def cfg(size: int = 20) -> LabelingConfig:
    return LabelingConfig(batch_size=size, quotas=LabelingQuotas(correction=0.4, negative=0.3, low_confidence=0.2, control=0.1))


def small_batch(store: ReviewStore, n: int = 4, batch: str = WEEK) -> list[dict]:
    """Register a weekly batch of the first `n` interactions of `traffic()` (rubric "# Rubric")."""
    recs = traffic()[:n]
    rows = [{**i, "ts": i["ts"].isoformat(), **{k: s[k] for k in ("signal", "weight", "correction_text", "evidence")}}
            for i, s in recs]
    sel = select_batch(batch, rows, cfg(n))
    store.register_batch(batch, sel.items, kind="weekly", rubric="# Rubric")
    return sel.items
