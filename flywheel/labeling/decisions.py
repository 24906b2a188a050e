"""Review decisions: one at a time (`record_decision`), by file (`export_batch` / `import_decisions`),
and resolved to one verdict per item when reviewers disagree (`resolve_decisions`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flywheel.config import LabelingConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import write_jsonl
from flywheel.labeling.store import Decision, ReviewError, ReviewStore

# Conflicting verdicts of several reviewers: the most cautious one wins.
VERDICT_PRECEDENCE: dict[str, int] = {"reject": 3, "fix": 2, "pass": 1}
ERRORS_KEPT = 100  # a file of garbage: the first problems are kept (and counted), not one per line


class DecisionFileError(InputError):
    """A decisions file that cannot be imported (nothing was applied): `errors` holds the first problems
    (each naming its line), `total` counts them all."""

    def __init__(self, path: str, errors: list[str], total: int | None = None) -> None:
        self.path = path
        self.errors = errors
        self.total = max(total or 0, len(errors))
        shown = "\n  ".join(errors[:20]) + (f"\n  ... and {self.total - 20} more" if self.total > 20 else "")
        super().__init__(f"{path}: {self.total} bad line(s), nothing applied:\n  {shown}")


def parse_json(raw: bytes) -> Any:
    """One JSON document from UTF-8 bytes; every way it can be unusable is a ValueError naming the reason
    (not UTF-8, invalid JSON, nested too deeply, a number too long to convert) and nothing else escapes."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("invalid JSON (nested too deeply)") from None
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
        raise ValueError("invalid JSON (a number with too many digits)") from None


# --- one decision, and decisions by file ---------------------------------------------------------
def record_decision(
    store: ReviewStore,
    batch_id: str,
    item_id: str,
    reviewer: str,
    verdict: str,
    text: str | None = None,
    reason: str | None = None,
    *,
    limits: LabelingConfig | None = None,
) -> Decision:
    """Validate and upsert one reviewer's decision on one item (raises `ReviewError` with the reason)."""
    row = store.validate_decision(batch_id, item_id, reviewer, verdict, text, reason, limits=limits)
    store.record_decisions([row])
    return store.decisions(batch_id, reviewer=row["reviewer"], item_id=item_id)[0]


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


def _lines(f: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The lines of a binary file, each read whole only when it is at most `limit` bytes (else None:
    the rest of that line is skipped unread into memory)."""
    while line := f.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = f.readline(1 << 20)
            yield None
        else:
            yield line


def import_decisions(
    store: ReviewStore, path: str | Path, reviewer: str, batch_id: str | None = None,
    limits: LabelingConfig | None = None,
) -> ImportReport:
    """Read a decisions JSONL (an edited export) and apply it for `reviewer`.

    The file is streamed line by line (memory stays bounded: a line longer than
    `labeling.max_import_line_bytes` is refused unread) and every line is validated first: not UTF-8,
    invalid JSON, unknown batch or item, bad verdict, a fix without text, text that cannot be stored
    (NUL, lone surrogates, too long), an item decided twice... One bad line applies nothing
    (`DecisionFileError` names the bad lines); otherwise all decisions go in one transaction.
    Lines without a verdict are left undecided.
    """
    limits = limits or LabelingConfig()
    p = Path(path)
    errors: list[str] = []
    n_errors = 0

    def bad(message: str) -> None:
        nonlocal n_errors
        n_errors += 1
        if len(errors) < ERRORS_KEPT:
            errors.append(message)

    rows: dict[tuple[str, str], dict[str, Any]] = {}  # at most one per known item: memory bounded by the store
    first_line: dict[tuple[str, str], int] = {}
    stored = set(store.batch_ids())
    known: dict[str, set[str] | None] = {}  # batch -> its item ids (None: closed)
    skipped = n_lines = 0
    try:
        f = p.open("rb")
    except OSError as exc:
        raise DecisionFileError(str(p), [f"cannot read the file: {exc}"]) from None
    with f:
        for lineno, raw in enumerate(_lines(f, limits.max_import_line_bytes), start=1):
            if raw is None:
                bad(f"line {lineno}: longer than {limits.max_import_line_bytes:,} bytes (labeling.max_import_line_bytes)")
                continue
            if not raw.strip():
                continue
            n_lines += 1
            try:
                rec = parse_json(raw)
            except ValueError as exc:
                bad(f"line {lineno}: {exc}")
                continue
            if not isinstance(rec, dict):
                bad(f"line {lineno}: expected a JSON object, got {type(rec).__name__}")
                continue
            bid = rec.get("batch_id") or batch_id
            if batch_id is not None and rec.get("batch_id") not in (None, batch_id):
                bad(f"line {lineno}: batch {rec.get('batch_id')!r:.60} is not the batch being imported ({batch_id!r})")
                continue
            if not isinstance(bid, str):
                bad(f"line {lineno}: no batch_id (give --batch or keep the exported batch_id)")
                continue
            if bid not in stored:
                bad(f"line {lineno}: batch {bid!r:.60} not found in the decision store")
                continue
            if bid not in known:
                known[bid] = None if store.closed_at(bid) is not None else set(store.item_ids(bid))
            items = known[bid]
            if items is None:
                bad(f"line {lineno}: batch {bid!r} is closed")
                continue
            verdict = rec.get("verdict")
            if verdict is None or verdict == "":
                skipped += 1
                continue
            try:
                row = store.validate_decision(bid, rec.get("item_id"), reviewer, verdict, rec.get("text"),
                                              rec.get("reason"), known_items=items, limits=limits)
            except ReviewError as exc:
                bad(f"line {lineno}: {exc}")
                continue
            key = (row["batch_id"], row["item_id"])
            if key in first_line:
                bad(f"line {lineno}: item {key[1]!r} of batch {key[0]!r} was already decided on line {first_line[key]}")
                continue
            first_line[key] = lineno
            rows[key] = row
    if n_errors:
        raise DecisionFileError(str(p), errors, total=n_errors)
    store.record_decisions(rows.values())
    return ImportReport(path=str(p), lines=n_lines, applied=len(rows), skipped_undecided=skipped,
                        batches=sorted({b for b, _ in rows}))


# --- one verdict per item --------------------------------------------------------------------------
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
