"""Near-copies of eval items for the decontamination tests and benchmark: an eval input with k character
edits (substitute, insert, delete, swap two adjacent), seeded, exactly k edits apart once normalised."""

from __future__ import annotations

import random
import string
from datetime import timedelta
from typing import Any

from rapidfuzz.distance import OSA

from flywheel.core.text import input_match_key, last_user_text
from flywheel.demo.cycles import cycles_for
from flywheel.demo.scenario import FULL, ScenarioFiles, build_files, conversation, simulate_requests


def edit(text: str, rng: random.Random) -> str:
    """One character edit at a letter or digit: substitute, insert, delete, or swap it with the next one."""
    i = rng.choice([i for i, c in enumerate(text) if c.isalnum()])
    op = rng.choice(("substitute", "insert", "delete", "swap"))
    letter = rng.choice(string.ascii_lowercase)
    if op == "substitute":
        return text[:i] + letter + text[i + 1 :]
    if op == "insert":
        return text[:i] + letter + text[i:]
    if op == "delete":
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i + 1 : i + 2] + text[i] + text[i + 2 :]


def plant(text: str, edits: int, rng: random.Random) -> str:
    """`text` with `edits` character edits, so that its `input_match_key` is exactly that many edits away."""
    key = input_match_key(text)
    for _ in range(1000):
        out = text
        for _ in range(edits):
            out = edit(out, rng)
        if OSA.distance(input_match_key(out), key) == edits:
            return out
    raise ValueError(f"cannot plant {edits} edits in {text!r}")


def within_budget(eval_rows: list[dict[str, Any]], edits: int) -> list[dict[str, Any]]:
    """The eval items long enough for `edits` edits to count as a copy (the rule caps the edits at
    `decontamination_max_edit_share` of the input: `2fa?` -> `2ap?` is another word, not a copy)."""
    from flywheel.config import CurationConfig
    from flywheel.core.text import input_match_key
    from flywheel.curation.steps.decontamination import edit_budget

    cfg = CurationConfig()
    return [e for e in eval_rows if edit_budget(input_match_key(last_user_text(e["messages"])), cfg) >= edits]


def planted_rows(eval_rows: list[dict[str, Any]], edits: int, seed: int = 0) -> list[dict[str, Any]]:
    """One training row per eval item: its input with `edits` edits, its answer."""
    rng = random.Random(f"{seed}:{edits}")
    return [{"messages": [{"role": "user", "content": plant(last_user_text(e["messages"]), edits, rng)},
                          e["messages"][-1]]} for e in eval_rows]


def demo_files() -> tuple[ScenarioFiles, list[dict[str, Any]]]:
    """(the demo's files, the requests of the demo's traffic weeks as training rows)."""
    files = build_files()
    traffic = []
    for cycle in cycles_for(FULL):
        for d in range(FULL.traffic_days if cycle.traffic_week else 0):
            day = (cycle.traffic_week + timedelta(days=d)).isoformat()
            traffic += [{"messages": conversation(r.text, r.intent)}
                        for r in simulate_requests(day, FULL, taken=files.taken_inputs,
                                                   drift=cycle.drift_from is not None and d >= cycle.drift_from)]
    return files, traffic
