"""Preference pairs: every origin, every drop reason, lineage, the files beside the dataset version, and
read = accepted + dropped for any candidates (hypothesis)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.config import CurationConfig, ProjectConfig
from flywheel.core.errors import StateError
from flywheel.core.storage import FlywheelHome
from flywheel.core.text import shingle_form
from flywheel.curation.preference_pairs import (
    DROPS_FILE,
    ORIGINS,
    SUMMARY_FILE,
    build_preference_pairs,
    curate_pairs,
    make_pair,
    read_preference_pairs,
)
from tests.curation.preference_world import ACCEPTED, DROPPED, EVAL_INPUT, messages, preference_world


def _key(pair: dict) -> tuple[str, str]:
    return pair["origin"], json.loads(pair["lineage"]).get("interaction_id")


def test_pairs_from_fixes_corrections_and_accepted_resubmissions(home: FlywheelHome, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'f.db'}"
    version = preference_world(home, db)
    built = build_preference_pairs(ProjectConfig(), home, db)
    assert built.version == version and built.path == home.dataset(version) / "preference_pairs.parquet"
    pairs = read_preference_pairs(home, version)
    assert pairs is not None and {_key(p) for p in pairs} == ACCEPTED
    by = {_key(p): p for p in pairs}
    fix = by[("reviewer_fix", "c2")]
    assert (fix["chosen"], fix["rejected"]) == ("Settings > Sync > turn it on.", "no idea")
    assert json.loads(fix["lineage"])["batch"] == "2026-11-02" and json.loads(fix["lineage"])["reviewer"] == "ann"
    resub = by[("resubmission", "r1b")]
    assert resub["prompt"] == messages("how can i delete a notebook please")  # the request the chosen answer answered
    assert (resub["chosen"], resub["rejected"]) == ("Right-click the notebook and choose Delete.", "Use the search bar.")
    assert json.loads(resub["lineage"])["interaction_ids"] == ["r1", "r1b"]
    assert by[("user_correction", "c1")]["chosen"] == "Open File > Export > PDF."

    s = built.summary
    assert s["read"] == s["accepted"] + s["dropped"] == 12 and s["accepted"] == 5
    assert s["drops_by_reason"] == DROPPED
    assert all(v["read"] == v["accepted"] + v["dropped"] for v in s["by_origin"].values())
    drops = pq.read_table(home.dataset(version) / DROPS_FILE).to_pylist()
    assert Counter(d["reason"] for d in drops) == Counter(DROPPED)
    superseded = next(d for d in drops if d["reason"] == "superseded_by_reviewer_fix")
    assert superseded["kept_instead"] == fix["pair_id"] and superseded["source"] == "user_correction"
    leak = next(d for d in drops if d["step"] == "decontamination")
    assert EVAL_INPUT[:30] in leak["detail"]
    assert json.loads((home.dataset(version) / SUMMARY_FILE).read_text())["content_hash"] == s["content_hash"]
    # the same inputs give the same pairs
    assert build_preference_pairs(ProjectConfig(), home, db).summary["content_hash"] == s["content_hash"]


def test_refuses_without_a_dataset_version_or_an_eval_set(home: FlywheelHome, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'f.db'}"
    with pytest.raises(StateError, match="no dataset version yet"):
        build_preference_pairs(ProjectConfig(), home, db)
    preference_world(home, db)
    home.warehouse("fixed_eval_set", "current").unlink()
    with pytest.raises(StateError, match="cannot be decontaminated"):
        build_preference_pairs(ProjectConfig(), home, db)
    assert read_preference_pairs(home, "ds0001") is None


def test_a_chosen_answer_the_sft_rules_would_drop_is_dropped() -> None:
    cfg = CurationConfig(answer_max_chars=20, answer_regex=r"[A-Z].*")
    cands = [make_pair(messages("q one"), "a" * 30, "x", "user_correction", {}),
             make_pair(messages("q two"), "lower case", "Other", "user_correction", {}),
             make_pair([{"role": "system", "content": "be brief"}], "Fine.", "x", "user_correction", {}),
             make_pair(messages("q three"), "Good.", " ", "user_correction", {})]
    out = curate_pairs(cands, {}, [], cfg)
    assert not out.pairs and [d["reason"] for d in out.drops] == [
        "chosen_fails_answer_rules", "chosen_fails_answer_rules", "no_user_turn", "empty_answer"]


_TEXTS = st.sampled_from(["Open the menu.", "open the menu.", "Click Save.", "", "Use Settings > Sync.", "No."])
_PROMPTS = st.sampled_from(["how do i save", "how do I save", "sync phone", EVAL_INPUT, "what is the weather like today"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_PROMPTS, _TEXTS, _TEXTS, st.sampled_from(ORIGINS)), max_size=12))
def test_every_candidate_is_accepted_or_dropped_with_a_reason(cands: list[tuple[str, str, str, str]]) -> None:
    pairs = [make_pair(messages(p), c, r, o, {"interaction_id": f"i{n}"}) for n, (p, c, r, o) in enumerate(cands)]
    evals = [{"example_id": "e1", "messages": [*messages(EVAL_INPUT), {"role": "assistant", "content": "Yes."}]}]
    out = curate_pairs(pairs, {}, evals, CurationConfig())
    assert out.read == len(pairs) == len(out.pairs) + len(out.drops)
    assert all(d["reason"] and d["step"] for d in out.drops)
    assert all(shingle_form(p["chosen"]) != shingle_form(p["rejected"]) and p["chosen"].strip() for p in out.pairs)
    assert all(EVAL_INPUT not in p["prompt"][0]["content"] for p in out.pairs)
    kept = [(shingle_form(p["prompt"][0]["content"]), shingle_form(p["chosen"]), shingle_form(p["rejected"]))
            for p in out.pairs]
    assert len(kept) == len(set(kept))
