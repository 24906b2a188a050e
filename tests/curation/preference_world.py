"""A captured day, a review batch, an eval set and a dataset version from which preference pairs are built:
every origin, and every reason a pair is dropped, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from flywheel.capture.signals import SIGNALS, SIGNALS_SCHEMA
from flywheel.capture.tables import INTERACTIONS_SCHEMA
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore

DAY = "2026-11-02"
EVAL_INPUT = "Can I recover a deleted notebook from the trash bin?"
EXPORT = "how do I export all of my notes to a pdf file on the desktop app"

# (id, prompt, output, signal, weight, correction, evidence)
ROWS = [
    ("c1", EXPORT, "Notes cannot be exported.", "correction", 3.0, "Open File > Export > PDF.", "correction"),
    ("c2", "how do i sync my phone", "no idea", "correction", 3.0, "Go to Settings > Sync.", "correction"),
    ("c3", "what does the star icon do", "It marks a note as a favourite.", "correction", 3.0, "It pins it.", "correction"),
    ("c4", "how do i rename a tag", "Right-click the tag.", "correction", 3.0, "right-click   the TAG.", "correction"),
    ("c5", EXPORT, "Notes cannot be exported.", "correction", 3.0, "Open File > Export > PDF.", "correction"),
    ("c6", EVAL_INPUT, "No.", "correction", 3.0, "Yes, from Trash within 30 days.", "correction"),
    ("c7", EXPORT + "?", "Notes cannot be exported!", "correction", 2.5, "Open File > Export > PDF.", "correction"),
    ("r1", "how do I delete a notebook", "Use the search bar.", "negative", 2.0, None, "resubmit:r1b"),
    ("r1b", "how can i delete a notebook please", "Right-click the notebook and choose Delete.", "positive", 1.0,
     None, "copy"),
    ("r2", "change the font size", "Fonts are fixed.", "negative", 2.0, None, "resubmit:r2b"),
    ("r2b", "how to change font size", "Fonts cannot change.", "negative", 2.0, None, "thumbs_down"),
    ("r3", "where are my archived notes", "In the bin.", "negative", 2.0, None, "thumbs_down,resubmit:r3b"),
    ("r3b", "where do archived notes go", "Open the Archive folder in the sidebar.", "none", 0.5, None, ""),
]
ACCEPTED = {("user_correction", "c1"), ("reviewer_fix", "c2"), ("reviewer_fix", "k1"), ("resubmission", "r1b"),
            ("resubmission", "r3b")}
DROPPED = {"superseded_by_reviewer_fix": 1, "reviewer_passed_rejected_answer": 1, "second_answer_not_accepted": 1,
           "chosen_equals_rejected": 1, "exact_duplicate": 1, "eval_near_copy": 1, "near_duplicate": 1}


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def write_capture_day(home: FlywheelHome) -> None:
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    inter, sig = [], []
    for n, (iid, prompt, output, signal, weight, correction, evidence) in enumerate(ROWS):
        ts = start + timedelta(minutes=n)
        inter.append({"interaction_id": iid, "ts": ts, "session_id": "s-" + iid.rstrip("b"), "user_id": "u1",
                      "model_version": "m1", "messages": messages(prompt), "input_text": prompt, "output": output,
                      "latency_ms": 10.0, "confidence": None, "metadata": "{}"})
        sig.append({"interaction_id": iid, "ts": ts, "session_id": "s-" + iid.rstrip("b"), "signal": signal,
                    "weight": weight, "correction_text": correction, "evidence": evidence})
    write_parquet(pa.Table.from_pylist(inter, schema=INTERACTIONS_SCHEMA), home.warehouse("interactions", DAY))
    write_parquet(pa.Table.from_pylist(sig, schema=SIGNALS_SCHEMA), home.warehouse(SIGNALS, DAY))


def write_review(db_url: str) -> None:
    """c2 fixed by a reviewer, c3's output passed, a control item k1 fixed, k2 rejected."""
    store = ReviewStore(db_url)
    prompts = {"c2": "how do i sync my phone", "c3": "what does the star icon do", "k1": "how do I share a note",
               "k2": "asdfgh"}
    outputs = {"c2": "no idea", "c3": "It marks a note as a favourite.", "k1": "You cannot.", "k2": "?"}
    items = [{"item_id": k, "kind": "control", "input_key": k, "interaction_id": k, "messages": messages(p),
              "input_text": p, "output": outputs[k]} for k, p in prompts.items()]
    store.register_batch(DAY, items, kind="weekly")
    record_decision(store, DAY, "c2", "ann", "fix", text="Settings > Sync > turn it on.")
    record_decision(store, DAY, "c3", "ann", "pass")
    record_decision(store, DAY, "k1", "ann", "fix", text="Click Share and enter an e-mail address.")
    record_decision(store, DAY, "k2", "ann", "reject", reason="no question")


def write_dataset_and_eval(home: FlywheelHome, version: str = "ds0001") -> str:
    rows = [make_example([*messages(f"question {i}"), {"role": "assistant", "content": "answer"}], "human")
            for i in range(3)]
    write_parquet(examples_table(rows), home.dataset(version) / "train.parquet")
    (home.path("datasets") / "LATEST").write_text(version + "\n")
    evals = [make_example([*messages(EVAL_INPUT), {"role": "assistant", "content": "Yes."}], "human", slice="clean")]
    write_parquet(examples_table(evals), home.warehouse("fixed_eval_set", "current"))
    return version


def preference_world(home: FlywheelHome, db_url: str) -> str:
    write_capture_day(home)
    write_review(db_url)
    return write_dataset_and_eval(home)
