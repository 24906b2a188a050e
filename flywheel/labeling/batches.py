"""Labeling: weekly batch selection, review decisions (pass / fix / reject), labels back into examples.

Steps, each with its counts:
1. `load_week_candidates`: the week's interactions joined with their signals (DuckDB over Parquet).
2. `select_batch`: corrections first, then negatives, then low-confidence outputs, then a seeded
   control sample of positive / no-signal traffic; near-identical inputs collapsed (rapidfuzz);
   items reviewed in an earlier batch left out; capped with per-kind quotas (unused quota flows on).
3. The batch is registered in the decision store (`flywheel.labeling.store`) and written as
   `warehouse/labeling_batch/<week>.parquet` and `labeling/<week>/batch.jsonl`.
4. Reviewers decide in the review page or by file (`export_batch` / `import_decisions`).
5. `resolve_decisions` + `build_reviewed_examples`: pass -> the model output is the answer, fix -> the
   edited answer (human_fixed), reject -> dropped (kept in the store with its reason).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from rapidfuzz import fuzz, process

from flywheel.config import LabelingConfig, SignalWeights
from flywheel.core.records import MESSAGES_TYPE, example_id, make_example
from flywheel.core.storage import FlywheelHome, duckdb_connection, write_jsonl, write_parquet
from flywheel.labeling.store import VERDICTS, Decision, ReviewError, ReviewStore

KINDS: tuple[str, ...] = ("correction", "negative", "low_confidence", "control")
SAMPLE_KIND = "sample"
BATCH_ASSET = "labeling_batch"
REVIEWED_ASSET = "reviewed_examples"

# Conflicting verdicts of several reviewers: the most cautious one wins.
VERDICT_PRECEDENCE: dict[str, int] = {"reject": 3, "fix": 2, "pass": 1}

BATCH_SCHEMA = pa.schema(
    [
        ("batch_id", pa.string()),
        ("item_id", pa.string()),
        ("position", pa.int64()),
        ("kind", pa.string()),  # correction | negative | low_confidence | control | sample
        ("interaction_id", pa.string()),
        ("ts", pa.string()),
        ("session_id", pa.string()),
        ("model_version", pa.string()),
        ("messages", MESSAGES_TYPE),  # the prompt (full conversation before the answer)
        ("input_text", pa.string()),
        ("output", pa.string()),  # the model's answer
        ("correction_text", pa.string()),  # the user's correction, if any
        ("signal", pa.string()),
        ("evidence", pa.string()),
        ("weight", pa.float64()),
        ("confidence", pa.float64()),
        ("duplicate_count", pa.int64()),  # interactions collapsed into this item (itself included)
        ("duplicate_ids", pa.list_(pa.string())),
        ("input_key", pa.string()),  # normalized input
        ("source", pa.string()),  # where a sample item came from (file or table), else null
        ("lineage", pa.string()),  # JSON: sample items keep their example's provenance
        ("rubric", pa.string()),
    ]
)


class DecisionFileError(ValueError):
    """A decisions file that cannot be imported; `errors` lists every bad line (nothing was applied)."""

    def __init__(self, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        shown = "\n  ".join(errors[:20]) + (f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else "")
        super().__init__(f"{path}: {len(errors)} bad line(s), nothing applied:\n  {shown}")


# --- 1. candidates -----------------------------------------------------------------------------
def week_days(week: str) -> list[str]:
    """The seven daily partition keys of a weekly key (the Monday)."""
    start = date.fromisoformat(week)
    if start.weekday() != 0:
        raise ValueError(f"weekly partition key {week!r} is not a Monday")
    return [(start + timedelta(days=i)).isoformat() for i in range(7)]


def load_week_candidates(home: FlywheelHome, week: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The week's interactions with their signal (none when no signal row), read with DuckDB.

    Returns the rows (oldest first) and counts: days found, interactions, signal rows.
    """
    days = week_days(week)
    i_files = [str(p) for p in home.warehouse_files("interactions", days)]
    s_files = [str(p) for p in home.warehouse_files("interaction_signals", days)]
    counts = {"days_with_interactions": len(i_files), "days_with_signals": len(s_files), "interactions": 0}
    if not i_files:
        return [], counts
    con = duckdb_connection()
    try:
        signals = (
            "SELECT * FROM read_parquet(?, union_by_name = true) "
            "QUALIFY row_number() OVER (PARTITION BY interaction_id ORDER BY ts DESC) = 1"
            if s_files
            else "SELECT NULL::VARCHAR AS interaction_id, NULL::VARCHAR AS signal, NULL::DOUBLE AS weight, "
            "NULL::VARCHAR AS correction_text, NULL::VARCHAR AS evidence WHERE false"
        )
        sql = f"""
            SELECT i.interaction_id, strftime(i.ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS ts, i.session_id,
                   i.model_version, i.messages, i.input_text, i.output, i.confidence,
                   coalesce(s.signal, 'none') AS signal, s.weight, s.correction_text, s.evidence
            FROM read_parquet(?, union_by_name = true) AS i
            LEFT JOIN ({signals}) AS s USING (interaction_id)
            ORDER BY i.ts, i.interaction_id
        """
        params: list[Any] = [i_files, s_files] if s_files else [i_files]
        con.execute("SET TimeZone = 'UTC'")
        table = con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()
    rows = table.to_pylist()
    counts["interactions"] = len(rows)
    counts["signal_rows"] = sum(1 for r in rows if r["weight"] is not None or r["signal"] != "none")
    return rows, counts


def normalize_input(text: str) -> str:
    """Case-folded words of a text, punctuation and spacing dropped: the key for near-identical inputs."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def input_key(messages: Sequence[dict[str, str]] | None, fallback: str = "") -> str:
    """The normalized user side of a conversation (every user turn)."""
    users = [m["content"] for m in (messages or []) if m.get("role") == "user" and m.get("content")]
    return normalize_input("\n".join(users) if users else fallback)


def candidate_kind(row: dict[str, Any], low_confidence_threshold: float) -> str:
    """Which queue an interaction belongs to: correction, negative, low_confidence or control."""
    if row.get("signal") == "correction":
        return "correction"
    if row.get("signal") == "negative":
        return "negative"
    conf = row.get("confidence")
    if conf is not None and conf == conf and conf < low_confidence_threshold:  # conf == conf: not NaN
        return "low_confidence"
    return "control"


# --- 2. selection ------------------------------------------------------------------------------
@dataclass
class BatchSelection:
    """A selected batch and the counts of every step."""

    batch_id: str
    items: list[dict[str, Any]]
    candidates: dict[str, int] = field(default_factory=dict)  # per kind, before anything is left out
    already_reviewed: dict[str, int] = field(default_factory=dict)
    collapsed: dict[str, int] = field(default_factory=dict)  # near-duplicates folded into another item
    unique: dict[str, int] = field(default_factory=dict)  # distinct items available per kind
    quota: dict[str, int] = field(default_factory=dict)
    selected: dict[str, int] = field(default_factory=dict)
    dropped_by_cap: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "candidates": self.candidates, "already_reviewed": self.already_reviewed, "collapsed": self.collapsed,
            "unique": self.unique, "quota": self.quota, "selected": self.selected,
            "dropped_by_cap": self.dropped_by_cap, "items": len(self.items),
        }


class _Groups:
    """Near-identical inputs folded together: exact key first, then rapidfuzz ratio >= cutoff."""

    def __init__(self, similarity: float) -> None:
        self.cutoff = similarity * 100.0
        self.by_key: dict[str, int] = {}
        self.keys: list[str] = []
        self.members: list[list[dict[str, Any]]] = []

    def find(self, key: str) -> int | None:
        if key in self.by_key:
            return self.by_key[key]
        if not self.keys or self.cutoff >= 100:  # similarity 1.0: identical keys only
            return None
        hit = process.extractOne(key, self.keys, scorer=fuzz.ratio, score_cutoff=self.cutoff)
        return hit[2] if hit else None

    def add(self, key: str, row: dict[str, Any], group: int | None) -> int:
        if group is None:
            group = len(self.members)
            self.keys.append(key)
            self.members.append([])
        self.by_key.setdefault(key, group)
        self.members[group].append(row)
        return group


def allot_quotas(size: int, shares: dict[str, float], available: dict[str, int]) -> dict[str, int]:
    """Slots per kind: each kind gets up to its share of `size`; unused slots flow to the kinds
    (in priority order) that still have candidates."""
    take = {k: min(available.get(k, 0), int(size * shares.get(k, 0.0))) for k in KINDS}
    over = sum(take.values()) - size
    for k in reversed(KINDS):  # shares summing above 1: the later kinds give way
        if over <= 0:
            break
        cut = min(over, take[k])
        take[k] -= cut
        over -= cut
    left = size - sum(take.values())
    for k in KINDS:
        extra = min(left, available.get(k, 0) - take[k])
        take[k] += extra
        left -= extra
    return take


def _item_from_row(row: dict[str, Any], kind: str, key: str, weights: SignalWeights) -> dict[str, Any]:
    weight = row.get("weight")
    if weight is None:
        weight = float(getattr(weights, row.get("signal") or "none", weights.none))
    conf = row.get("confidence")
    return {
        "item_id": row["interaction_id"],
        "kind": kind,
        "interaction_id": row["interaction_id"],
        "ts": row.get("ts"),
        "session_id": row.get("session_id"),
        "model_version": row.get("model_version"),
        "messages": [{"role": m["role"], "content": m["content"]} for m in (row.get("messages") or [])],
        "input_text": row.get("input_text") or "",
        "output": row.get("output") or "",
        "correction_text": row.get("correction_text"),
        "signal": row.get("signal") or "none",
        "evidence": row.get("evidence"),
        "weight": float(weight),
        "confidence": None if conf is None or conf != conf else float(conf),
        "duplicate_count": 1,
        "duplicate_ids": [],
        "input_key": key,
        "source": None,
        "lineage": None,
    }


def select_batch(
    batch_id: str,
    rows: Iterable[dict[str, Any]],
    config: LabelingConfig,
    *,
    rubric: str = "",
    weights: SignalWeights | None = None,
    reviewed_ids: set[str] | None = None,
    reviewed_inputs: set[str] | None = None,
) -> BatchSelection:
    """Choose a review batch from interactions with signals (see the module docstring for the rules).

    Deterministic for the same rows, config (seed) and reviewed sets. Within a kind, the most frequent
    inputs (largest duplicate groups) come first, then the oldest.
    """
    weights = weights or SignalWeights()
    reviewed_ids = reviewed_ids or set()
    reviewed_inputs = reviewed_inputs or set()
    sel = BatchSelection(batch_id=batch_id, items=[])
    sel.candidates = dict.fromkeys(KINDS, 0)
    sel.already_reviewed = dict.fromkeys(KINDS, 0)
    sel.collapsed = dict.fromkeys(KINDS, 0)

    pools: dict[str, list[tuple[str, dict[str, Any]]]] = {k: [] for k in KINDS}
    for row in rows:
        kind = candidate_kind(row, config.low_confidence_threshold)
        sel.candidates[kind] += 1
        key = input_key(row.get("messages"), row.get("input_text") or "")
        if row["interaction_id"] in reviewed_ids or key in reviewed_inputs:
            sel.already_reviewed[kind] += 1
            continue
        pools[kind].append((key, row))

    groups = _Groups(config.near_duplicate_similarity)
    group_kind: list[str] = []
    for kind in KINDS[:-1]:  # every priority candidate is grouped, in priority order
        for key, row in sorted(pools[kind], key=lambda kr: (kr[1].get("ts") or "", kr[1]["interaction_id"])):
            g = groups.find(key)
            if g is not None:
                sel.collapsed[kind] += 1
            else:
                group_kind.append(kind)
            groups.add(key, row, g)

    def ranked(kind: str) -> list[int]:
        ids = [g for g, k in enumerate(group_kind) if k == kind]
        return sorted(ids, key=lambda g: (-len(groups.members[g]), groups.members[g][0].get("ts") or "",
                                          groups.members[g][0]["interaction_id"]))

    priority = {k: ranked(k) for k in KINDS[:-1]}
    sel.unique = {k: len(priority[k]) for k in KINDS[:-1]}
    control_pool = pools["control"]
    available = dict(sel.unique, control=len(control_pool))
    slots = allot_quotas(config.batch_size, config.quotas.model_dump(), available)
    sel.quota = {k: int(config.batch_size * getattr(config.quotas, k)) for k in KINDS}

    # the control sample: a seeded shuffle drawn until its slots are filled; near-duplicates of an
    # item already in the batch are folded into it (not counted as new)
    rng = random.Random(f"{config.seed}:{batch_id}")
    shuffled = sorted(control_pool, key=lambda kr: kr[1]["interaction_id"])
    rng.shuffle(shuffled)
    control_groups: list[int] = []
    examined = 0
    for key, row in shuffled:
        if len(control_groups) >= slots["control"]:
            break
        examined += 1
        g = groups.find(key)
        if g is not None:
            sel.collapsed["control"] += 1
            if group_kind[g] == "control":
                groups.add(key, row, g)
            continue
        g = groups.add(key, row, None)
        group_kind.append("control")
        control_groups.append(g)
    sel.unique["control"] = len(control_groups) + (len(shuffled) - examined)
    shortfall = slots["control"] - len(control_groups)
    slots["control"] = len(control_groups)
    for k in KINDS[:-1]:  # control slots it could not fill flow back
        extra = min(shortfall, len(priority[k]) - slots[k])
        slots[k] += extra
        shortfall -= extra

    chosen = [(k, g) for k in KINDS[:-1] for g in priority[k][: slots[k]]] + [("control", g) for g in control_groups]
    for kind, g in chosen:
        members = groups.members[g]
        item = _item_from_row(members[0], kind, groups.keys[g], weights)
        item["duplicate_count"] = len(members)
        item["duplicate_ids"] = [m["interaction_id"] for m in members[1:]]
        item["batch_id"] = batch_id
        item["position"] = len(sel.items)
        item["rubric"] = rubric
        sel.items.append(item)
    sel.selected = {k: sum(1 for kk, _ in chosen if kk == k) for k in KINDS}
    sel.dropped_by_cap = {k: sel.unique[k] - sel.selected[k] for k in KINDS}
    return sel


# --- 3. batch files and registration ------------------------------------------------------------
def batch_table(items: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{n: it.get(n) for n in BATCH_SCHEMA.names} for it in items], schema=BATCH_SCHEMA)


def write_batch_files(home: FlywheelHome, batch_id: str, items: Sequence[dict[str, Any]]) -> tuple[Path, Path]:
    """`warehouse/labeling_batch/<batch>.parquet` and `labeling/<batch>/batch.jsonl` (atomic)."""
    parquet = write_parquet(batch_table(items), home.warehouse(BATCH_ASSET, batch_id))
    jsonl = write_jsonl(export_rows(items), home.labeling(batch_id) / "batch.jsonl")
    return parquet, jsonl


def register_selection(store: ReviewStore, selection: BatchSelection, rubric: str) -> bool:
    """Register a weekly batch in the decision store. A batch whose review has begun is kept as it is
    (returns False); its stored items then replace `selection.items`."""
    if store.has_batch(selection.batch_id) and store.decisions(selection.batch_id):
        selection.items = store.items(selection.batch_id)
        return False
    store.register_batch(selection.batch_id, selection.items, kind="weekly", rubric=rubric, meta=selection.metadata())
    return True


# --- 4. decisions --------------------------------------------------------------------------------
def record_decision(
    store: ReviewStore,
    batch_id: str,
    item_id: str,
    reviewer: str,
    verdict: str,
    text: str | None = None,
    reason: str | None = None,
) -> Decision:
    """Validate and upsert one reviewer's decision on one item (raises `ReviewError` with the reason)."""
    row = store.validate_decision(batch_id, item_id, reviewer, verdict, text, reason)
    store.record_decisions([row])
    return next(d for d in store.decisions(batch_id, reviewer=row["reviewer"]) if d.item_id == item_id)


def export_rows(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch items as JSONL rows for reviewing by file: fill in verdict (pass | fix | reject), text, reason."""
    keep = ("batch_id", "item_id", "position", "kind", "interaction_id", "messages", "input_text", "output",
            "correction_text", "signal", "evidence", "confidence", "duplicate_count", "source", "rubric")
    return [{**{k: it.get(k) for k in keep}, "verdict": None, "text": None, "reason": None} for it in items]


def export_batch(store: ReviewStore, batch_id: str, target: str | Path) -> Path:
    """Write a batch as JSONL for reviewing by file."""
    info = store.batch(batch_id)
    items = store.items(batch_id)
    for it in items:
        it["rubric"] = it.get("rubric") or info.rubric
        it["batch_id"] = batch_id
    return write_jsonl(export_rows(items), target)


@dataclass
class ImportReport:
    path: str
    lines: int
    applied: int
    skipped_undecided: int
    batches: list[str]


def import_decisions(store: ReviewStore, path: str | Path, reviewer: str, batch_id: str | None = None) -> ImportReport:
    """Read a decisions JSONL (an edited export) and apply it for `reviewer`: every line is validated
    first (unknown item, bad verdict, fix without text, invalid JSON ...); one bad line applies nothing
    (`DecisionFileError` names each bad line); otherwise all decisions go in one transaction.
    Lines without a verdict are left undecided."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DecisionFileError(str(p), [f"cannot read the file: {exc}"]) from None
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    known: dict[str, set[str] | None] = {}
    skipped = 0
    n_lines = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        n_lines += 1
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(rec, dict):
            errors.append(f"line {lineno}: expected a JSON object, got {type(rec).__name__}")
            continue
        bid = rec.get("batch_id") or batch_id
        if batch_id is not None and rec.get("batch_id") not in (None, batch_id):
            errors.append(f"line {lineno}: batch {rec.get('batch_id')!r} is not the batch being imported ({batch_id!r})")
            continue
        if not isinstance(bid, str):
            errors.append(f"line {lineno}: no batch_id (give --batch or keep the exported batch_id)")
            continue
        if bid not in known:
            try:
                info = store.batch(bid)
                known[bid] = None if info.closed_at is not None else set(store.item_ids(bid))
            except ReviewError:
                known[bid] = set()
                errors.append(f"line {lineno}: batch {bid!r} not found in the decision store")
                continue
        items = known[bid]
        if items is None:
            errors.append(f"line {lineno}: batch {bid!r} is closed")
            continue
        if not items:
            errors.append(f"line {lineno}: batch {bid!r} not found in the decision store")
            continue
        verdict = rec.get("verdict")
        if verdict is None or verdict == "":
            skipped += 1
            continue
        try:
            rows.append(store.validate_decision(bid, rec.get("item_id"), reviewer, verdict, rec.get("text"),
                                                rec.get("reason"), known_items=items))
        except ReviewError as exc:
            errors.append(f"line {lineno}: {exc}")
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        k = (row["batch_id"], row["item_id"])
        seen[k] = seen.get(k, 0) + 1
    errors += [f"item {i!r} of batch {b!r} appears {n} times" for (b, i), n in seen.items() if n > 1]
    if errors:
        raise DecisionFileError(str(p), errors)
    store.record_decisions(rows)
    return ImportReport(path=str(p), lines=n_lines, applied=len(rows), skipped_undecided=skipped,
                        batches=sorted({r["batch_id"] for r in rows}))


# --- 5. labels back into examples ----------------------------------------------------------------
@dataclass(frozen=True)
class ResolvedDecision:
    """The verdict an item gets after every reviewer has spoken."""

    item_id: str
    verdict: str
    text: str | None
    reason: str | None
    reviewer: str  # whose decision was taken
    reviewers: tuple[str, ...]
    conflict: bool


def resolve_decisions(decisions: Iterable[Decision]) -> dict[str, ResolvedDecision]:
    """One verdict per item. Reviewers who disagree: the most cautious verdict wins
    (reject > fix > pass: a doubt about an example keeps it out, a written fix beats a pass);
    among decisions with that verdict the most recently updated wins (ties: reviewer name)."""
    by_item: dict[str, list[Decision]] = {}
    for d in decisions:
        by_item.setdefault(d.item_id, []).append(d)
    out: dict[str, ResolvedDecision] = {}
    for item_id, ds in by_item.items():
        best = max(ds, key=lambda d: (VERDICT_PRECEDENCE[d.verdict], d.updated_at, d.reviewer))
        out[item_id] = ResolvedDecision(
            item_id=item_id, verdict=best.verdict, text=best.text, reason=best.reason, reviewer=best.reviewer,
            reviewers=tuple(sorted({d.reviewer for d in ds})), conflict=len({d.verdict for d in ds}) > 1,
        )
    return out


def cohens_kappa(pairs: Sequence[tuple[str, str]], labels: Sequence[str] = VERDICTS) -> float | None:
    """Cohen's kappa of two raters' labels (one pair per item); None without pairs."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[lab] * second[lab] for lab in set(labels) | set(first) | set(second)) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


@dataclass
class ReviewStats:
    items: int
    decided: int
    undecided: int
    verdicts: dict[str, int]  # resolved verdict per decided item
    fix_rate: float
    reject_rate: float
    double_reviewed: int
    agreement: float | None  # observed agreement on double-reviewed items
    kappa: float | None
    conflicts: int


def review_stats(items: Sequence[dict[str, Any]], decisions: Sequence[Decision]) -> ReviewStats:
    """Verdict counts and rates of a batch, and inter-reviewer agreement (Cohen's kappa over the first two
    reviews of every item reviewed twice)."""
    resolved = resolve_decisions(decisions)
    ids = {it["item_id"] for it in items}
    resolved = {k: v for k, v in resolved.items() if k in ids}
    counts = Counter(r.verdict for r in resolved.values())
    decided = len(resolved)
    by_item: dict[str, list[Decision]] = {}
    for d in sorted(decisions, key=lambda d: (d.created_at, d.reviewer)):
        by_item.setdefault(d.item_id, []).append(d)
    pairs = [(ds[0].verdict, ds[1].verdict) for ds in by_item.values() if len(ds) >= 2]
    return ReviewStats(
        items=len(items), decided=decided, undecided=len(items) - decided,
        verdicts={v: counts.get(v, 0) for v in VERDICTS},
        fix_rate=counts.get("fix", 0) / decided if decided else 0.0,
        reject_rate=counts.get("reject", 0) / decided if decided else 0.0,
        double_reviewed=len(pairs),
        agreement=(sum(a == b for a, b in pairs) / len(pairs)) if pairs else None,
        kappa=cohens_kappa(pairs), conflicts=sum(1 for r in resolved.values() if r.conflict),
    )


def build_reviewed_examples(
    batch_id: str, items: Sequence[dict[str, Any]], decisions: Sequence[Decision]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """EXAMPLE_SCHEMA rows (source=real) from a reviewed batch; rejected and undecided items are left out.

    Returns the rows and counts (items = examples + rejected + undecided).
    """
    resolved = resolve_decisions(decisions)
    rows: list[dict[str, Any]] = []
    counts = {"items": len(items), "examples": 0, "passed": 0, "fixed": 0, "rejected": 0, "undecided": 0}
    for it in items:
        r = resolved.get(it["item_id"])
        if r is None:
            counts["undecided"] += 1
            continue
        if r.verdict == "reject":
            counts["rejected"] += 1
            continue
        answer = r.text if r.verdict == "fix" else it["output"]
        counts["fixed" if r.verdict == "fix" else "passed"] += 1
        lineage = {
            "interaction_id": it.get("interaction_id"), "batch": batch_id, "item_id": it["item_id"],
            "reviewer": r.reviewer, "reviewers": list(r.reviewers), "verdict": r.verdict,
            "signal": it.get("signal"), "kind": it.get("kind"), "duplicate_ids": it.get("duplicate_ids") or [],
        }
        rows.append(
            make_example(
                [*it["messages"], {"role": "assistant", "content": answer}], "real",
                human_fixed=r.verdict == "fix", lineage=lineage, weight=float(it.get("weight") or 1.0),
            )
        )
    counts["examples"] = len(rows)
    return rows, counts


# --- sample batches of any example source --------------------------------------------------------
def create_sample_batch(
    store: ReviewStore,
    batch_id: str,
    examples_rows: Sequence[dict[str, Any]],
    *,
    n: int | None = None,
    seed: int = 0,
    rubric: str = "",
    source: str | None = None,
) -> list[dict[str, Any]]:
    """Send a seeded random sample of `n` example rows (all when None) for review as batch `batch_id`.

    Each row needs ChatML `messages` whose last turn is the assistant's answer (EXAMPLE_SCHEMA rows
    fit; `example_id`, `source`, `generator`, `lineage` are kept as the item's lineage). Rows with the
    same content are sampled once. Returns the items (item_id = the example's content hash).
    """
    candidates: dict[str, tuple[int, dict[str, Any]]] = {}
    for idx, row in enumerate(examples_rows):
        msgs = row.get("messages") or []
        if not msgs or msgs[-1].get("role") != "assistant":
            raise ReviewError(f"row {idx}: expected ChatML messages ending with the assistant's answer")
        candidates.setdefault(example_id(msgs), (idx, row))
    keys = sorted(candidates)
    random.Random(f"{seed}:{batch_id}").shuffle(keys)
    chosen = sorted(keys[: n if n is not None else len(keys)], key=lambda k: candidates[k][0])
    items = []
    for k in chosen:
        idx, row = candidates[k]
        msgs = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        prompt = msgs[:-1]
        lineage = {"row": idx, "example_id": row.get("example_id") or k, "source": row.get("source"),
                   "generator": row.get("generator"), "lineage": row.get("lineage"), "file": source}
        items.append({
            "batch_id": batch_id, "item_id": k, "position": len(items), "kind": SAMPLE_KIND, "interaction_id": None,
            "ts": None, "session_id": None, "model_version": row.get("generator"), "messages": prompt,
            "input_text": next((m["content"] for m in reversed(prompt) if m["role"] == "user"), ""),
            "output": msgs[-1]["content"], "correction_text": None, "signal": "none", "evidence": None,
            "weight": float(row.get("weight") or 1.0), "confidence": None, "duplicate_count": 1, "duplicate_ids": [],
            "input_key": input_key(prompt), "source": row.get("source") or source,
            "lineage": json.dumps(lineage, sort_keys=True, default=str), "rubric": rubric,
        })
    store.register_batch(batch_id, items, kind="sample", rubric=rubric, source=source,
                         meta={"rows": len(examples_rows), "distinct": len(candidates), "sampled": len(items), "seed": seed})
    return items


def sample_batch_results(store: ReviewStore, batch_id: str) -> list[dict[str, Any]]:
    """Per item of a (sample) batch: the item, its resolved verdict (None while undecided), text, reason."""
    resolved = resolve_decisions(store.decisions(batch_id))
    out = []
    for it in store.items(batch_id):
        r = resolved.get(it["item_id"])
        out.append({
            "item_id": it["item_id"], "lineage": json.loads(it["lineage"]) if it.get("lineage") else None,
            "messages": it["messages"], "output": it["output"], "verdict": r.verdict if r else None,
            "text": r.text if r else None, "reason": r.reason if r else None,
            "reviewers": list(r.reviewers) if r else [],
        })
    return out


def load_example_source(home: FlywheelHome, source: str) -> list[dict[str, Any]]:
    """Example rows from a Parquet or JSON/JSONL file (ChatML, ShareGPT or Alpaca) or a warehouse table
    name (every Parquet file under `warehouse/<name>/`)."""
    p = Path(source)
    if not p.exists():
        table_dir = home.warehouse(source)
        files = sorted(table_dir.glob("*.parquet")) if table_dir.is_dir() else []
        if not files:
            raise FileNotFoundError(f"{source}: neither a file nor a warehouse table with Parquet files")
        con = duckdb_connection()
        try:
            sql = "SELECT * FROM read_parquet(?, union_by_name = true)"
            return con.sql(sql, params=[[str(f) for f in files]]).to_arrow_table().to_pylist()
        finally:
            con.close()
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    try:
        from flywheel.formats import load_file
    except ImportError:  # formats module not available: ChatML JSONL only
        rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [r for r in rows if isinstance(r, dict) and r.get("messages")]
    report = load_file(p)
    return [{"messages": r.messages, "lineage": json.dumps({"file": str(p), "row": r.index})}
            for r in report.rows if r.ok and r.messages]


# --- conflicting examples of a dataset version ---------------------------------------------------
CONFLICT_KIND = "conflict"


def create_conflict_batch(
    store: ReviewStore,
    batch_id: str,
    conflicts: Sequence[dict[str, Any]],
    *,
    rubric: str = "",
    source: str | None = None,
) -> list[dict[str, Any]]:
    """Send the examples curation dropped as conflicting for review as batch `batch_id`.

    Each conflict row (curation's conflicts list: `example_id`, `messages` or `input`, `answer`, `source`,
    `generator`, `kept_example_id`, `kept_source`, `kept_answer`, `similarity`) becomes one item showing the
    dropped example's prompt and answer; the kept example's answer is its evidence and in its lineage.
    pass = the dropped answer is acceptable too, fix = an edited answer, reject = the dropped answer is wrong.
    Returns the items (item_id = the dropped example's id; repeats are listed once).
    """
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for idx, c in enumerate(conflicts):
        item_id = c.get("example_id")
        if not item_id or c.get("answer") is None:
            raise ReviewError(f"conflict {idx}: needs the dropped example's example_id and answer")
        if item_id in seen:
            continue
        seen.add(item_id)
        msgs = c.get("messages")
        prompt = ([{"role": m["role"], "content": m["content"]} for m in msgs[:-1]] if msgs
                  else [{"role": "user", "content": c.get("input") or ""}])
        lineage = {"row": idx, "example_id": item_id, "source": c.get("source"), "generator": c.get("generator"),
                   "kept_example_id": c.get("kept_example_id"), "kept_source": c.get("kept_source"),
                   "kept_answer": c.get("kept_answer"), "answer_similarity": c.get("similarity"), "file": source}
        items.append({
            "batch_id": batch_id, "item_id": item_id, "position": len(items), "kind": CONFLICT_KIND,
            "interaction_id": None, "ts": None, "session_id": None, "model_version": c.get("generator"),
            "messages": prompt, "input_text": next((m["content"] for m in reversed(prompt) if m["role"] == "user"), ""),
            "output": c["answer"], "correction_text": None, "signal": "none",
            "evidence": f"kept answer ({c.get('kept_source') or 'unknown source'}): {c.get('kept_answer') or ''}",
            "weight": 1.0, "confidence": None, "duplicate_count": 1, "duplicate_ids": [],
            "input_key": "",  # a training-example conflict holds no production input back from weekly review
            "source": c.get("source") or source, "lineage": json.dumps(lineage, sort_keys=True, default=str),
            "rubric": rubric,
        })
    store.register_batch(batch_id, items, kind=CONFLICT_KIND, rubric=rubric, source=source,
                         meta={"conflicts": len(conflicts), "items": len(items)})
    return items
