"""What every curation step shares: the step interface, the context it records into, and trust order.

A step takes the working rows and returns those it keeps; whatever it removes goes to
`CurationContext.drop` (step, reason, detail, the example kept instead), rows it only flags go to
`flagged`, conflicting examples to `conflicts`. The tables of those records are defined here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from flywheel.config import CurationConfig
from flywheel.core.text import shingle_form
from flywheel.curation.near_duplicates import MinHasher

SOURCE_PRIORITY: dict[str, int] = {"human_fixed": 0, "real": 1, "human": 2, "distilled": 3, "synthetic": 4}
REAL_SOURCES = frozenset({"real", "human"})

DROPS_SCHEMA = pa.schema([("example_id", pa.string()), ("source", pa.string()), ("step", pa.string()),
                          ("reason", pa.string()), ("detail", pa.string()), ("kept_instead", pa.string())])
FLAGGED_SCHEMA = pa.schema([("example_id", pa.string()), ("source", pa.string()), ("rule", pa.string()),
                            ("detail", pa.string())])
CONFLICTS_SCHEMA = pa.schema([("example_id", pa.string()), ("source", pa.string()), ("generator", pa.string()),
                              ("input", pa.string()), ("answer", pa.string()), ("kept_example_id", pa.string()),
                              ("kept_source", pa.string()), ("kept_answer", pa.string()), ("similarity", pa.float64())])


def input_text(messages: Sequence[dict[str, str]]) -> str:
    """Everything the model sees before the final answer, except the system prompt (the compared input)."""
    return "\n".join(m["content"] for m in messages[:-1] if m["role"] != "system")


def trust_rank(row: dict[str, Any]) -> int:
    """Lower is more trusted: human_fixed > real > human > distilled > synthetic."""
    return 0 if row.get("human_fixed") else SOURCE_PRIORITY.get(row.get("source") or "", 9)


def keep_order(row: dict[str, Any]) -> tuple[int, float, str]:
    """Sort key of which copy to keep: most trusted source, then the highest signal weight, then id."""
    return (trust_rank(row), -(row.get("weight") or 0.0), row["example_id"])


def is_self_generated(row: dict[str, Any], self_names: set[str]) -> bool:
    """The row's answer was written by the model being trained (one of `self_names`)."""
    return bool(row.get("generator")) and row["generator"] in self_names


@dataclass
class StepReport:
    """Counts of one step: rows in, rows out, dropped per reason, flagged per rule, seconds."""

    step: str
    n_in: int
    n_out: int
    dropped: dict[str, int]
    flagged: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalItems:
    """The fixed eval set's conversations (None when the eval set file does not exist)."""

    rows: list[dict[str, Any]] | None
    path: str = ""


@dataclass
class CurationContext:
    """What the steps share: the config, the eval set, production facts, and the records they append."""

    config: CurationConfig
    eval_items: EvalItems = field(default_factory=lambda: EvalItems(None))
    production_model_versions: set[str] = field(default_factory=set)
    drops: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def drop(self, row: dict[str, Any], step: str, reason: str, detail: str = "", kept_instead: str | None = None) -> None:
        self.drops.append({"example_id": row["example_id"], "source": row.get("source"), "step": step,
                           "reason": reason, "detail": detail, "kept_instead": kept_instead})

    def hasher(self) -> MinHasher:
        c = self.config
        return MinHasher(num_perm=c.minhash_permutations, seed=c.seed + 1, shingle=c.shingle_chars)

    def input_signatures(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """MinHash signatures of the rows' inputs, computed once per example id across steps."""
        index: dict[str, int] = self.facts.setdefault("_signature_index", {})
        store: list[np.ndarray] = self.facts.setdefault("_signature_store", [])
        todo: dict[str, str] = {}
        for r in rows:
            if r["example_id"] not in index and r["example_id"] not in todo:
                todo[r["example_id"]] = shingle_form(input_text(r["messages"]))
        if todo:
            start = sum(len(b) for b in store)
            store.append(self.hasher().signatures(list(todo.values())))
            index.update((eid, start + j) for j, eid in enumerate(todo))
        matrix = store[0] if len(store) == 1 else np.concatenate(store)
        if len(store) > 1:
            store[:] = [matrix]
        return matrix[np.fromiter((index[r["example_id"]] for r in rows), dtype=np.int64, count=len(rows))]


class Step:
    """One curation step: rows in, rows out; drops/flags go to the context."""

    name = "step"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        raise NotImplementedError


def records_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The context's records (drops, flagged, conflicts) as a table of `schema` (extra keys left out)."""
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
