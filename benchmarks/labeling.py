"""Batch selection speed: `select_batch` with rapidfuzz near-duplicate collapsing vs exact-key only (baseline).

Prints seconds per run for a week of N interactions (20 % negative, 5 % corrections, 10 % low confidence).
Usage: python benchmarks/labeling.py [N ...]
"""

from __future__ import annotations

import random
import sys
import time

from flywheel.config import LabelingConfig
from flywheel.labeling.selection import select_batch

WORDS = "account invoice export csv login password reset billing plan refund team seat api key webhook error".split()


def week(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + f" {rng.randint(0, n)}"
        r = rng.random()
        signal = "correction" if r < 0.05 else "negative" if r < 0.25 else rng.choice(["positive", "none"])
        rows.append({"interaction_id": f"i{i}", "ts": f"2026-11-16T{i % 24:02d}:00:00Z", "session_id": "s",
                     "model_version": "m", "messages": [{"role": "user", "content": text}], "input_text": text,
                     "output": "a", "confidence": rng.random(), "signal": signal, "weight": 1.0,
                     "correction_text": "c" if signal == "correction" else None, "evidence": None})
    return rows


def main(sizes: list[int]) -> None:
    print(f"{'interactions':>12} {'rapidfuzz 0.9 (s)':>18} {'exact keys (s)':>15} {'collapsed':>10} {'selected':>9}")
    for n in sizes:
        rows = week(n)
        t = time.perf_counter()
        fuzzy = select_batch("2026-11-16", rows, LabelingConfig(near_duplicate_similarity=0.9))
        t_fuzzy = time.perf_counter() - t
        t = time.perf_counter()
        select_batch("2026-11-16", rows, LabelingConfig(near_duplicate_similarity=1.0))  # baseline: identical keys only
        t_exact = time.perf_counter() - t
        print(f"{n:>12} {t_fuzzy:>18.2f} {t_exact:>15.2f} {sum(fuzzy.collapsed.values()):>10} {len(fuzzy.items):>9}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 5_000, 10_000])
