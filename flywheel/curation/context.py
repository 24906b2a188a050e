"""What every curation step shares: the step interface, the context it records into, and trust order.

A step takes the working rows and returns those it keeps; whatever it removes goes to
`CurationContext.drop` (step, reason, detail, the example kept instead), rows it only flags go to
`flagged`, conflicting examples to `conflicts`. The tables of those records are defined here too, and
what reviewers decided that a build applies (`ReviewInputs`: each synthetic or distilled file's
admission, the verdicts on earlier versions' conflicts). Which side of the ratios a row counts on is
decided here once (`is_real_side`, `is_generated`, `is_self_generated`, `ratio_counts`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
import pyarrow as pa

from flywheel.config import CurationConfig
from flywheel.core.records import example_id
from flywheel.core.text import shingle_form
from flywheel.curation.near_duplicates import MinHasher

SOURCE_PRIORITY: dict[str, int] = {"human_fixed": 0, "real": 1, "human": 2, "distilled": 3, "synthetic": 4}
REAL_SOURCES = frozenset({"real", "human"})
GENERATED_SOURCES = frozenset({"synthetic", "distilled"})
"""Sources whose answers a model wrote: each of their files must pass its admission sample before it trains,
and they count on the synthetic side of the real:synthetic ratio."""

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


def is_real_side(row: dict[str, Any]) -> bool:
    """The row counts on the real side of the real:synthetic ratio: real traffic, human-written, or an
    answer a person wrote or edited (human_fixed, whatever the input's source)."""
    return bool(row.get("human_fixed")) or row.get("source") in REAL_SOURCES


def is_generated(row: dict[str, Any]) -> bool:
    """The row counts on the synthetic side of the ratio: a synthetic or distilled answer no person edited."""
    return not row.get("human_fixed") and row.get("source") in GENERATED_SOURCES


def is_self_generated(row: dict[str, Any], self_names: set[str]) -> bool:
    """The row's answer was written by the model being trained: a generator among `self_names`, or a
    production answer a reviewer passed (source real, not human_fixed: the serving model wrote it).
    An answer a person fixed is theirs, not the model's."""
    if row.get("human_fixed"):
        return False
    return row.get("source") == "real" or (bool(row.get("generator")) and row["generator"] in self_names)


def ratio_counts(rows: Sequence[dict[str, Any]], self_names: set[str]) -> dict[str, int]:
    """The counts behind the real:synthetic ratio and the self-generated share (one definition for the
    balance step, the rules and the manifest)."""
    return {
        "real_or_human": sum(1 for r in rows if is_real_side(r)),
        "synthetic": sum(1 for r in rows if is_generated(r) and r.get("source") == "synthetic"),
        "distilled": sum(1 for r in rows if is_generated(r) and r.get("source") == "distilled"),
        "generated": sum(1 for r in rows if is_generated(r)),
        "self_generated": sum(1 for r in rows if is_self_generated(r, self_names)),
    }


def lineage_of(row: dict[str, Any]) -> dict[str, Any]:
    """The row's lineage JSON as a dict (empty when missing)."""
    return json.loads(row.get("lineage") or "{}")


def with_fixed_answer(row: dict[str, Any], text: str, **lineage: Any) -> dict[str, Any]:
    """`row` with a person's answer `text` as its final turn: human_fixed, a new example id, the old id
    (`original_example_id`) and `lineage` added to its lineage."""
    messages = [*row["messages"][:-1], {"role": "assistant", "content": text}]
    new_lineage = {**lineage_of(row), **lineage}
    new_lineage.setdefault("original_example_id", row["example_id"])
    return {**row, "messages": messages, "example_id": example_id(messages), "human_fixed": True,
            "lineage": json.dumps(new_lineage, sort_keys=True, ensure_ascii=False, default=str)}


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


ADMITTED, PENDING, FAILED = "admitted", "pending", "failed"


@dataclass(frozen=True)
class RowVerdict:
    """A reviewer's resolved verdict on one example: pass | fix (`text`: the edited answer) | reject (`reason`)."""

    batch_id: str
    verdict: str
    text: str | None = None
    reason: str | None = None
    reviewer: str = ""


@dataclass
class FileAdmission:
    """One synthetic or distilled source file (by path and content hash) and the review of its sample.

    `status`: admitted (the sample batch is complete and passes / decided >= the minimum pass rate),
    pending (not complete, or not registered), failed (complete below the minimum, or closed undecided).
    `verdicts` are the sample's decisions by the row's example id; `kept` / `held_out` / `fixed_rows` /
    `rejected_rows` are what a build did with the file's rows."""

    file: str
    sha256: str
    source: str
    batch_id: str
    rows: int = 0
    generators: list[str] = field(default_factory=list)
    status: str = PENDING
    items: int = 0
    decided: int = 0
    passed: int = 0
    fixed: int = 0
    rejected: int = 0
    detail: str = ""
    verdicts: dict[str, RowVerdict] = field(default_factory=dict)
    kept: int = 0
    held_out: int = 0
    fixed_rows: int = 0
    rejected_rows: int = 0

    @property
    def name(self) -> str:
        return PurePath(self.file).name

    @property
    def pass_rate(self) -> float | None:
        return round(self.passed / self.decided, 4) if self.decided else None

    @property
    def admitted(self) -> bool:
        return self.status == ADMITTED

    def summary(self) -> dict[str, Any]:
        """The manifest's entry (everything but the verdicts)."""
        return {"file": self.file, "name": self.name, "sha256": self.sha256, "source": self.source,
                "generators": self.generators, "rows": self.rows, "batch": self.batch_id, "items": self.items,
                "decided": self.decided, "passed": self.passed, "fixed": self.fixed, "rejected": self.rejected,
                "pass_rate": self.pass_rate, "status": self.status, "detail": self.detail, "kept": self.kept,
                "held_out": self.held_out, "fixed_rows": self.fixed_rows, "rejected_rows": self.rejected_rows}


@dataclass(frozen=True)
class ConflictVerdict:
    """A reviewer's verdict on a conflict: the example dropped as conflicting beside the one kept instead."""

    dropped_id: str
    kept_id: str | None
    verdict: RowVerdict

    @property
    def both_wrong(self) -> bool:
        """A reject whose reason starts with "both": the kept answer is wrong too."""
        return self.verdict.verdict == "reject" and (self.verdict.reason or "").strip().lower().startswith("both")


@dataclass
class ReviewInputs:
    """What reviewers decided that a build applies: each synthetic or distilled file's admission by
    (file, sha256) (None: not checked, so the blocking `sources_admitted` rule fails on any such row), the
    verdicts on earlier versions' conflicts, and the conflict batches they were read from."""

    admission: dict[tuple[str, str], FileAdmission] | None = None
    conflict_verdicts: list[ConflictVerdict] = field(default_factory=list)
    conflict_batches: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CurationContext:
    """What the steps share: the config, the eval set, production facts, reviewers' decisions, and the
    records they append."""

    config: CurationConfig
    eval_items: EvalItems = field(default_factory=lambda: EvalItems(None))
    production_model_versions: set[str] = field(default_factory=set)
    reviews: ReviewInputs = field(default_factory=ReviewInputs)
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
