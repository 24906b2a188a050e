"""Eval files and datasets the evaluation tests write: five slices whose reference answers are short."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_parquet

SLICE_ANSWERS = {"clean": "yes", "messy": "yes", "edge_case": "yes or no", "decline": "yes, sorry", "out_of_domain": "yes"}
MAX_NEW_TOKENS = 12


def eval_rows(n: int = 100) -> list[dict]:
    slices = list(SLICE_ANSWERS)
    rows = []
    for i in range(n):
        s = slices[i % len(slices)]
        rows.append({"messages": [{"role": "user", "content": f"{s} q{i}"},
                                  {"role": "assistant", "content": SLICE_ANSWERS[s]}], "slice": s})
    return rows


def write_eval_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_dataset(home: FlywheelHome, version: str, inputs: list[str]) -> None:
    rows = [make_example([{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}], "human")
            for t in inputs]
    write_parquet(examples_table(rows), home.dataset(version) / "train.parquet")
