"""Preference pairs (prompt, chosen, rejected) from what people corrected: the DPO stage's data.

Three origins, most trusted first:
- `reviewer_fix`: a review decision `fix` on any batch item: the edited answer beats the item's answer;
- `user_correction`: a `correction` signal in capture: the user's text beats the model's output;
- `resubmission`: an interaction resubmitted by a similar message (signal evidence `resubmit:<id>`)
  whose answer the user then accepted (its own signal is positive or none: copied, or not resubmitted
  again): the second answer beats the first, on the second request.

Every candidate read is accepted or dropped with its reason (read = accepted + dropped): an unusable
pair (no user turn, an empty answer, chosen equal to rejected, a chosen answer the SFT rules would
drop), a pair a reviewer contradicted (the rejected answer passed, the chosen one faulted, a reviewer's
fix on the same interaction supersedes the user's), duplicates (`steps.dedup`: exact, and near-same
inputs whose chosen and rejected answers both agree) and eval leaks (`steps.decontamination`). Pairs
are versioned with the dataset: `datasets/<version>/preference_pairs.parquet`, the drops beside them
(`preference_drops.parquet`, DROPS_SCHEMA) and the counts (`preference_pairs.json`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from flywheel.capture.records import INTERACTIONS
from flywheel.capture.signals import SIGNALS
from flywheel.config import CurationConfig, ProjectConfig
from flywheel.core.errors import StateError, require
from flywheel.core.records import MESSAGES_TYPE, example_id
from flywheel.core.storage import FlywheelHome, duckdb_connection, read_parquet, write_json, write_parquet
from flywheel.core.text import last_user_text, shingle_form
from flywheel.curation.answer_format import AnswerFormat
from flywheel.curation.build import FIXED_EVAL_SET
from flywheel.curation.context import DROPS_SCHEMA, CurationContext, keep_order, records_table
from flywheel.curation.sources import read_eval_items
from flywheel.curation.steps.decontamination import contamination
from flywheel.curation.steps.dedup import answer_similarity, exact_key, near_input_groups
from flywheel.curation.steps.rubric import rule_empty_or_degenerate, rule_length
from flywheel.curation.versions import latest_path, latest_version
from flywheel.labeling.decisions import resolve_decisions
from flywheel.labeling.store import ReviewStore

REVIEWER_FIX, USER_CORRECTION, RESUBMISSION = "reviewer_fix", "user_correction", "resubmission"
ORIGINS: tuple[str, ...] = (REVIEWER_FIX, USER_CORRECTION, RESUBMISSION)
PAIRS_FILE, DROPS_FILE, SUMMARY_FILE = "preference_pairs.parquet", "preference_drops.parquet", "preference_pairs.json"

PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()),  # content hash of prompt, chosen and rejected
    ("prompt", MESSAGES_TYPE),  # ChatML up to the answer
    ("chosen", pa.string()),
    ("rejected", pa.string()),
    ("origin", pa.string()),  # reviewer_fix | user_correction | resubmission
    ("lineage", pa.string()),  # JSON: interaction_ids, batch, item_id, reviewer ...
    ("weight", pa.float64()),
])


def make_pair(prompt: Sequence[dict[str, Any]], chosen: str, rejected: str, origin: str, lineage: dict[str, Any],
              weight: float = 1.0) -> dict[str, Any]:
    """One row of PAIR_SCHEMA (the id hashes the prompt and both answers)."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in prompt]
    pid = example_id([*msgs, {"role": "chosen", "content": chosen}, {"role": "rejected", "content": rejected}])
    return {"pair_id": pid, "prompt": msgs, "chosen": chosen, "rejected": rejected, "origin": origin,
            "lineage": json.dumps(lineage, sort_keys=True, ensure_ascii=False, default=str), "weight": float(weight)}


# --- candidates ----------------------------------------------------------------------------------
_LATEST = "QUALIFY row_number() OVER (PARTITION BY interaction_id ORDER BY ts DESC) = 1"


def capture_candidates(home: FlywheelHome) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(user-correction and resubmission pairs, resubmissions dropped because the second answer was not
    accepted) from every day of `warehouse/interactions` and `warehouse/interaction_signals`."""
    i_files = sorted(str(p) for p in home.warehouse(INTERACTIONS).glob("*.parquet"))
    s_files = sorted(str(p) for p in home.warehouse(SIGNALS).glob("*.parquet"))
    if not i_files or not s_files:
        return [], []
    con = duckdb_connection(home=home)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TEMP TABLE i AS SELECT interaction_id, ts, messages, output FROM "
                    f"read_parquet(?, union_by_name = true) {_LATEST}", [i_files])
        con.execute(f"CREATE TEMP TABLE s AS SELECT interaction_id, ts, signal, weight, correction_text, evidence "
                    f"FROM read_parquet(?, union_by_name = true) {_LATEST}", [s_files])
        corrections = con.sql(
            "SELECT s.interaction_id, i.messages, i.output, s.correction_text, s.weight FROM s JOIN i USING "
            "(interaction_id) WHERE s.signal = 'correction' ORDER BY i.ts, s.interaction_id").to_arrow_table().to_pylist()
        resubmits = con.sql(
            """
            WITH r AS (SELECT interaction_id AS a_id, weight, regexp_extract(evidence, 'resubmit:([^,]+)', 1) AS b_id
                       FROM s WHERE signal = 'negative' AND evidence LIKE '%resubmit:%')
            SELECT r.a_id, r.b_id, r.weight, a.output AS rejected, b.messages AS prompt, b.output AS chosen,
                   bs.signal AS b_signal, bs.evidence AS b_evidence
            FROM r JOIN i a ON a.interaction_id = r.a_id
            LEFT JOIN i b ON b.interaction_id = r.b_id LEFT JOIN s bs ON bs.interaction_id = r.b_id
            ORDER BY a.ts, r.a_id
            """).to_arrow_table().to_pylist()
    finally:
        con.close()
    pairs = [make_pair(r["messages"] or [], r["correction_text"] or "", r["output"] or "", USER_CORRECTION,
                       {"interaction_id": r["interaction_id"], "interaction_ids": [r["interaction_id"]]},
                       r["weight"] or 1.0) for r in corrections]
    not_accepted: list[dict[str, Any]] = []
    for r in resubmits:
        lineage = {"interaction_id": r["b_id"], "rejected_interaction_id": r["a_id"],
                   "interaction_ids": [r["a_id"], r["b_id"]]}
        pair = make_pair(r["prompt"] or [], r["chosen"] or "", r["rejected"] or "", RESUBMISSION, lineage, r["weight"] or 1.0)
        why = None
        if r["prompt"] is None:
            why = ("second_answer_missing", f"resubmission {r['b_id']!r} is not in the captured interactions")
        elif r["b_signal"] is None:
            why = ("second_answer_unsignalled", f"resubmission {r['b_id']!r} has no signal yet (its day not computed)")
        elif r["b_signal"] not in ("positive", "none"):
            why = ("second_answer_not_accepted", f"resubmission {r['b_id']!r} drew {r['b_signal']} ({r['b_evidence']})")
        if why:
            not_accepted.append({**pair, "_drop": why})
        else:
            pairs.append(pair)
    return pairs, not_accepted


def review_candidates(store: ReviewStore) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str | None]]]:
    """(a pair per reviewer fix on any batch, {interaction_id: (resolved verdict, the fix pair's id)})."""
    pairs: list[dict[str, Any]] = []
    verdicts: dict[str, tuple[str, str | None]] = {}
    for batch_id in store.batch_ids():
        resolved = resolve_decisions(store.decisions(batch_id))
        if not resolved:
            continue
        for it in store.items(batch_id):
            r = resolved.get(it["item_id"])
            if r is None:
                continue
            pid = None
            if r.verdict == "fix" and it.get("output") is not None:
                iid = it.get("interaction_id")
                lineage = {"batch": batch_id, "item_id": it["item_id"], "reviewer": r.reviewer,
                           "reviewers": list(r.reviewers), "interaction_id": iid, "interaction_ids": [iid] if iid else []}
                pair = make_pair(it.get("messages") or [], r.text or "", it["output"], REVIEWER_FIX, lineage,
                                 float(it.get("weight") or 1.0))
                pairs.append(pair)
                pid = pair["pair_id"]
            if it.get("interaction_id"):
                verdicts[it["interaction_id"]] = (r.verdict, pid)
    return pairs, verdicts


# --- curation ------------------------------------------------------------------------------------
@dataclass
class PairSet:
    """Accepted pairs, dropped ones (DROPS_SCHEMA dicts), and the count of candidates read."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    drops: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0

    def summary(self) -> dict[str, Any]:
        by_origin = {o: {"read": 0, "accepted": 0, "dropped": 0} for o in ORIGINS}
        for p in self.pairs:
            by_origin[p["origin"]]["accepted"] += 1
        for d in self.drops:
            by_origin[d["source"]]["dropped"] += 1
        for counts in by_origin.values():
            counts["read"] = counts["accepted"] + counts["dropped"]
        return {"read": self.read, "accepted": len(self.pairs), "dropped": len(self.drops), "by_origin": by_origin,
                "drops_by_reason": dict(Counter(d["reason"] for d in self.drops).most_common()),
                "content_hash": pairs_hash(self.pairs)}


def pairs_hash(pairs: Sequence[dict[str, Any]]) -> str:
    """sha256 of the pair ids (order-free): the same pairs give the same hash."""
    return hashlib.sha256("\n".join(sorted(p["pair_id"] for p in pairs)).encode()).hexdigest()


def _as_example(pair: dict[str, Any], answer: str) -> dict[str, Any]:
    """The pair as the example-shaped row the SFT steps compare (its input, one answer, its trust)."""
    return {"example_id": pair["pair_id"], "messages": [*pair["prompt"], {"role": "assistant", "content": answer}],
            "source": "real", "human_fixed": pair["origin"] == REVIEWER_FIX, "weight": pair["weight"]}


def _unusable(pair: dict[str, Any], cfg: CurationConfig, rule: AnswerFormat) -> tuple[str, str] | None:
    if not last_user_text(pair["prompt"]).strip():
        return "no_user_turn", "the prompt has no user message"
    if not pair["chosen"].strip() or not pair["rejected"].strip():
        return "empty_answer", "chosen" if not pair["chosen"].strip() else "rejected"
    if shingle_form(pair["chosen"]) == shingle_form(pair["rejected"]):
        return "chosen_equals_rejected", "the two answers are the same text"
    problem = rule_empty_or_degenerate(pair["chosen"]) or rule_length(pair["chosen"], cfg) or rule.problem(pair["chosen"])
    return ("chosen_fails_answer_rules", f"chosen answer: {problem}") if problem else None


def _contradicted(pair: dict[str, Any], verdicts: dict[str, tuple[str, str | None]]) -> tuple[str, str, str | None] | None:
    """Why a reviewer's verdict contradicts a user-signal pair (reason, detail, the pair kept instead)."""
    lineage = json.loads(pair["lineage"])
    rejected_iid = lineage.get("rejected_interaction_id") or lineage.get("interaction_id")
    verdict, fix_pair = verdicts.get(rejected_iid, (None, None))
    if verdict == "pass":
        return "reviewer_passed_rejected_answer", f"a reviewer passed the answer of {rejected_iid!r}", None
    if pair["origin"] == USER_CORRECTION and verdict == "fix":
        return "superseded_by_reviewer_fix", f"a reviewer fixed {rejected_iid!r}", fix_pair
    if pair["origin"] == USER_CORRECTION and verdict == "reject":
        return "reviewer_rejected_item", f"a reviewer rejected {rejected_iid!r}", None
    if pair["origin"] == RESUBMISSION:
        chosen_verdict, fix_pair = verdicts.get(lineage["interaction_id"], (None, None))
        if chosen_verdict in ("fix", "reject"):
            return "reviewer_faulted_chosen_answer", f"a reviewer's {chosen_verdict} on {lineage['interaction_id']!r}", fix_pair
    return None


def curate_pairs(candidates: Sequence[dict[str, Any]], verdicts: dict[str, tuple[str, str | None]],
                 eval_rows: Sequence[dict[str, Any]], cfg: CurationConfig,
                 dropped: Sequence[dict[str, Any]] = ()) -> PairSet:
    """Validity, reviewers' verdicts, duplicates, then decontamination (the SFT rows' rules and functions).
    `dropped` are candidates already refused (each with `_drop`: (reason, detail))."""
    out = PairSet(read=len(candidates) + len(dropped))

    def drop(pair: dict[str, Any], step: str, reason: str, detail: str, kept: str | None = None) -> None:
        out.drops.append({"example_id": pair["pair_id"], "source": pair["origin"], "step": step, "reason": reason,
                          "detail": detail, "kept_instead": kept})

    for pair in dropped:
        drop(pair, "acceptance", *pair["_drop"])
    rule = AnswerFormat.from_config(cfg)
    rows: list[dict[str, Any]] = []
    for pair in candidates:
        if (why := _unusable(pair, cfg, rule)) is not None:
            drop(pair, "validity", *why)
        elif pair["origin"] != REVIEWER_FIX and (why3 := _contradicted(pair, verdicts)) is not None:
            drop(pair, "review", *why3)
        else:
            rows.append(pair)
    # duplicates: exact (prompt and both answers), then near-same inputs whose two answers both agree
    rows.sort(key=lambda p: keep_order(_as_example(p, p["chosen"])))
    first: dict[tuple[str, str], str] = {}
    unique = []
    for p in rows:
        key = (exact_key(_as_example(p, p["chosen"])["messages"]), shingle_form(p["rejected"]))
        if key in first:
            drop(p, "dedup", "exact_duplicate", "same prompt, chosen and rejected answers", first[key])
        else:
            first[key] = p["pair_id"]
            unique.append(p)
    ctx = CurationContext(cfg)
    limit = cfg.conflict_answer_similarity
    gone: set[int] = set()
    for keeper, members in near_input_groups([_as_example(p, p["chosen"]) for p in unique], ctx):
        k = unique[keeper]
        for i, input_sim in members:
            p = unique[i]
            sims = (answer_similarity(p["chosen"], k["chosen"]), answer_similarity(p["rejected"], k["rejected"]))
            if min(sims) >= limit:
                gone.add(i)
                drop(p, "dedup", "near_duplicate", f"input ~{input_sim:.2f} Jaccard, chosen {sims[0]:.2f} and "
                     f"rejected {sims[1]:.2f} answer similarity", k["pair_id"])
    unique = [p for i, p in enumerate(unique) if i not in gone]
    # decontamination: both answers are scanned for eval n-grams, the prompt for near-copies of eval inputs
    found = contamination([_as_example(p, f"{p['chosen']}\n{p['rejected']}") for p in unique], eval_rows, cfg,
                          ctx.hasher())
    for i, (reason, detail) in found.items():
        drop(unique[i], "decontamination", reason, detail)
    out.pairs = sorted((p for i, p in enumerate(unique) if i not in found), key=lambda p: p["pair_id"])
    require(out.read == len(out.pairs) + len(out.drops),
            f"preference pairs: {out.read} read but {len(out.pairs)} accepted + {len(out.drops)} dropped")
    return out


# --- the entry point of the asset, and the reader ----------------------------------------------------
@dataclass
class PreferencePairsBuild:
    version: str
    path: Path
    pairs: PairSet
    summary: dict[str, Any]


def build_preference_pairs(project: ProjectConfig, home: FlywheelHome, db_url: str,
                           version: str | None = None) -> PreferencePairsBuild:
    """Pairs for dataset `version` (default `datasets/LATEST`) from every captured day and every review
    decision; written beside the version's train.parquet. Refuses without a version or an eval set."""
    version = version or latest_version(home)
    if version is None:
        raise StateError(f"{latest_path(home)}: no dataset version yet (materialize training_dataset first)")
    eval_path = home.warehouse(*FIXED_EVAL_SET)
    eval_items = read_eval_items(eval_path)
    if eval_items.rows is None:
        raise StateError(f"{eval_path}: the fixed eval set is missing, so preference pairs cannot be decontaminated "
                         "(materialize fixed_eval_set first)")
    captured, not_accepted = capture_candidates(home)
    fixes, verdicts = review_candidates(ReviewStore(db_url))
    result = curate_pairs(fixes + captured, verdicts, eval_items.rows, project.curation, not_accepted)
    folder = home.dataset(version)
    write_parquet(pa.Table.from_pylist(result.pairs, schema=PAIR_SCHEMA), folder / PAIRS_FILE)
    write_parquet(records_table(result.drops, DROPS_SCHEMA), folder / DROPS_FILE)
    summary = {"dataset_version": version, **result.summary(), "files": {"pairs": PAIRS_FILE, "drops": DROPS_FILE}}
    write_json(summary, folder / SUMMARY_FILE)
    return PreferencePairsBuild(version, folder / PAIRS_FILE, result, summary)


def read_preference_pairs(home: FlywheelHome, version: str) -> list[dict[str, Any]] | None:
    """The accepted pairs of a dataset version (None when its pairs were never built)."""
    path = home.dataset(version) / PAIRS_FILE
    return read_parquet(path, schema=PAIR_SCHEMA).to_pylist() if path.exists() else None


def pair_conversations(pairs: Sequence[dict[str, Any]]) -> list[list[dict[str, str]]]:
    """Each pair as the conversation prompt + chosen answer (what a leak check compares)."""
    return [[*p["prompt"], {"role": "assistant", "content": p["chosen"]}] for p in pairs]

