"""`curate` and `run_steps` on the shared real files: every step conserves rows (in = out + dropped)."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from flywheel.config import CurationConfig
from flywheel.core.errors import InvariantError
from flywheel.curation.context import CurationContext, EvalItems, Step
from flywheel.curation.near_duplicates import exact_jaccard
from flywheel.curation.pipeline import curate, run_steps
from flywheel.curation.sources import load_source_examples
from tests.curation.examples import ALPACA, CHATML, SHAREGPT, ex


def test_alpaca_exact_duplicates_found_and_reported() -> None:
    rows = load_source_examples([ALPACA], "human").examples
    result = curate(rows, CurationConfig(), EvalItems([]))
    exact = [d for d in result.drops if d["reason"] == "exact_duplicate"]
    originals = Counter(json.dumps(r, sort_keys=True) for r in json.loads(ALPACA.read_text()))
    assert len(exact) == sum(c - 1 for c in originals.values()) == 14
    kept_ids = {r["example_id"] for r in result.rows}
    assert all(d["kept_instead"] in kept_ids and d["step"] == "dedup" for d in exact)
    dedup = next(r for r in result.reports if r.step == "dedup")
    assert dedup.n_in - dedup.n_out == sum(dedup.dropped.values())


def test_sharegpt_near_identical_conversations_found() -> None:
    rows = load_source_examples([SHAREGPT], "human").examples
    result = curate(rows, CurationConfig(), EvalItems([]))
    near = [d for d in result.drops if d["reason"] == "near_duplicate"]
    assert len(near) > 250  # "many near-identical conversations"
    by_id = {r["example_id"]: r for r in rows}
    kept = {r["example_id"] for r in result.rows}
    sample = random.Random(0).sample(near, 20)
    for d in sample:  # each dropped conversation really is close to the one kept instead
        a, b = by_id[d["example_id"]]["messages"], by_id[d["kept_instead"]]["messages"]
        assert d["kept_instead"] in kept
        text = lambda m: "\n".join(t["content"] for t in m[:-1])  # noqa: E731
        assert exact_jaccard(text(a), text(b)) >= 0.6


def test_chatml_toy_conserves_counts_through_every_step() -> None:
    load = load_source_examples([CHATML], "human")
    result = curate(load.examples, CurationConfig(min_examples=1, target_examples=1), EvalItems([]))
    for rep in result.reports:
        assert rep.n_in == rep.n_out + sum(rep.dropped.values())
    assert len(load.examples) == len(result.rows) + len(result.drops)


class _LosesRows(Step):
    name = "lossy"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        return rows[1:]  # removes a row without recording a drop


def test_a_step_that_loses_rows_is_an_invariant_error() -> None:
    """Row conservation is checked explicitly (an InvariantError, not an `assert`: it holds under -O)."""
    with pytest.raises(InvariantError, match="step lossy lost rows: 2 in, 1 out, 0 dropped"):
        run_steps([ex("a", "b."), ex("c", "d.")], CurationContext(CurationConfig()), [_LosesRows()])
