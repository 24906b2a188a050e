"""The example record: one training or eval row in canonical ChatML with its provenance.

Every source (reviewed real traffic, human seed files, synthetic and distilled files) and the fixed
eval set produce tables of this schema, so curation, training and evaluation read one shape.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import pyarrow as pa

Source = Literal["real", "human", "synthetic", "distilled"]
SOURCES: tuple[str, ...] = ("real", "human", "synthetic", "distilled")

MAX_ID_CHARS = 128
"""The longest id (interaction, session, user, model version) any store holds: the labeling store's
varchar(128) columns. Capture quarantines a row with a longer id."""

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)

EXAMPLE_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),  # content hash of the messages
        ("messages", MESSAGES_TYPE),  # canonical ChatML, final turn from the assistant
        ("source", pa.string()),  # real | human | synthetic | distilled
        ("generator", pa.string()),  # model that wrote the answer (synthetic/distilled), else null
        ("human_fixed", pa.bool_()),  # the answer was written or edited by a person
        ("lineage", pa.string()),  # JSON: interaction_id, batch, reviewer, file, row ...
        ("slice", pa.string()),  # eval slice tag (clean, messy, edge_case ...) or null
        ("weight", pa.float64()),  # training weight from the signal
    ]
)


def example_id(messages: list[dict[str, str]]) -> str:
    """Content hash of a conversation (role + content of every turn)."""
    canon = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def make_example(
    messages: list[dict[str, str]],
    source: str,
    *,
    generator: str | None = None,
    human_fixed: bool = False,
    lineage: dict[str, Any] | None = None,
    slice: str | None = None,
    weight: float = 1.0,
) -> dict[str, Any]:
    """One row of EXAMPLE_SCHEMA."""
    if source not in SOURCES:
        raise ValueError(f"unknown example source {source!r}; expected one of {SOURCES}")
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {
        "example_id": example_id(msgs),
        "messages": msgs,
        "source": source,
        "generator": generator,
        "human_fixed": human_fixed,
        "lineage": json.dumps(lineage or {}, sort_keys=True, ensure_ascii=False),
        "slice": slice,
        "weight": float(weight),
    }


def examples_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA)


QUARANTINE_SCHEMA = pa.schema(
    [("source_file", pa.string()), ("line", pa.int64()), ("reason", pa.string()), ("detail", pa.string()), ("raw", pa.string())]
)
"""A rejected input row: where it came from, why, and its text (read = accepted + quarantined)."""


def quarantine_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Quarantine rows (dicts with QUARANTINE_SCHEMA's fields) as one Arrow table."""
    return pa.Table.from_pylist(list(rows), schema=QUARANTINE_SCHEMA)

