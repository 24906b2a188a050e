"""Throughput of flywheel.formats on ~100k rows built from the shared datasets, beside baselines.

Prints rows/s for: parsing the rows as JSON (baseline: the cost of merely reading them), to_chatml,
validate_messages, and the repetition check (word 4-grams) beside a 16-character-window baseline.
Run: `.venv/bin/python benchmarks/formats.py [ROWS]`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flywheel import formats as F

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def char_window_repetition_share(text: str) -> float:
    """The baseline: repeated 16-character windows for every answer (a Python-level loop per character)."""
    s = text.strip()
    if len(s) < F.REPETITION_MIN_CHARS:
        return 0.0
    total = len(s) - F.REPETITION_WINDOW + 1
    return 1.0 - len({s[i:i + F.REPETITION_WINDOW] for i in range(total)}) / total


def timed(label: str, n: int, fn: Callable[[], object]) -> None:
    start = time.perf_counter()
    fn()
    took = time.perf_counter() - start
    print(f"{label:<44} {took:7.3f} s  {n / took:12,.0f} rows/s")


def main(n_rows: int = 100_000) -> None:
    reports = [F.load_file(DATASETS / name) for name in
               ("chatml_openai_toy.jsonl", "sharegpt_fastchat_dummy.json", "alpaca_llamafactory_demo.json")]
    pool = [(r.raw, rep.format) for rep in reports for r in rep.rows]
    rows = [pool[i % len(pool)] for i in range(n_rows)]
    lines = [json.dumps(raw) for raw, _ in rows]
    messages = [F.to_chatml(raw, fmt) for raw, fmt in rows]
    answers = [m[-1]["content"] for m in messages if isinstance(m[-1].get("content"), str)]
    chars = sum(len(line) for line in lines)
    print(f"{n_rows:,} rows ({chars / 1e6:.1f} M characters of JSON) from {len(pool)} distinct rows")
    timed("baseline: json.loads of every row", n_rows, lambda: [json.loads(x) for x in lines])
    timed("to_chatml", n_rows, lambda: [F.to_chatml(raw, fmt) for raw, fmt in rows])
    timed("validate_messages (approximate tokens)", n_rows, lambda: [F.validate_messages(m) for m in messages])
    timed("repetition_share (word 4-grams)", len(answers), lambda: [F.repetition_share(a) for a in answers])
    timed("baseline: 16-character windows", len(answers), lambda: [char_window_repetition_share(a) for a in answers])
    timed("approx_token_count of every answer", len(answers), lambda: [F.approx_token_count(a) for a in answers])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
