"""Small made-up example rows and the shared real files, for the curation tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

from flywheel.core.records import make_example
from tests.shared_data import DATASETS

ALPACA = DATASETS / "alpaca_llamafactory_demo.json"
SHAREGPT = DATASETS / "sharegpt_fastchat_dummy.json"
CHATML = DATASETS / "chatml_openai_toy.jsonl"


def ex(user: str, answer: str, source: str = "human", **kw) -> dict:
    """One EXAMPLE_SCHEMA row: a user turn and the assistant's answer."""
    return make_example([{"role": "user", "content": user}, {"role": "assistant", "content": answer}], source, **kw)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def varied_rows(n: int) -> list[dict]:
    """`n` distinct support-style examples (seeded)."""
    rng = random.Random(1)
    words = "account billing password refund order shipping invoice login email phone plan upgrade".split()
    out = []
    for i in range(n):
        q = " ".join(rng.choice(words) for _ in range(6)) + f" case {i}"
        out.append(ex(q, f"For case {i}, open {rng.choice(words)} settings and follow the {rng.choice(words)} steps.", "human"))
    return out
