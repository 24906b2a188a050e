"""Erasure of one user's data (GDPR art. 17): `erase_user` removes every row of the user from every store
under the home and the review database, and names the model versions trained on it.

The user is found by the raw id the serving app logged and by its pseudonyms under the current and every
old key (`flywheel.capture.pseudonyms`); their interactions by id, from the landing files, the warehouse
and the quarantine. Removed then:
- landing: the user's interaction lines, and the feedback lines of those interactions (files rewritten
  atomically, emptied files deleted; orphaned `.tmp` files are published first, live writers' `.tmp`
  files are counted as `pending`: run the erasure again once they are published);
- every Parquet table under `warehouse/`, `quarantine/`, `datasets/` and `reports/`: a row goes when it
  is the user's (`user_id`), one of their interactions (`interaction_id`, `item_id`, `duplicate_ids`,
  or an id in `lineage`, `evidence`, `raw`, `detail`), or an example built from one (`example_id`,
  `kept_example_id`, `kept_instead`: examples whose lineage names the user's interactions, and the
  examples derived from those); a quarantined line also when its `user_id` field is the user's;
- JSONL files under `labeling/`, `datasets/` and `reports/`: the lines naming those ids;
- the review database: the items naming them (weekly items, dataset samples, conflicts) and every
  decision on those items (SQLite: `secure_delete`, `VACUUM`, then the WAL is checkpointed and
  truncated, so no free page or WAL frame keeps a copy; PostgreSQL frees them at its next vacuum).
An item or example that collapsed the user's interaction as a near-duplicate of another is removed too:
its input matched the user's text. Dataset versions are amended in place, not rebuilt: the version id
stays (model lineage points at it); its manifest gets an `erasures` entry and its card a note, and the
model versions trained on an amended version (registry and `models/*/manifest.json`) are listed for
retraining. Each run appends a record (when, rows per store, files, versions, models; never the id) to
`reports/erasures.jsonl`. Running it again removes nothing and says so.

The home may be on object storage (`flywheel.core.storage`): files are read through their paths, a file
rewritten without the user's rows is uploaded whole as one object (no reader sees half of it), an
emptied one is deleted, and the log line is appended by rewriting the log object.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from flywheel.capture.landing import landing_days, recover_orphans
from flywheel.capture.pseudonyms import all_pseudonymizers
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.config import CaptureConfig
from flywheel.core.errors import InputError
from flywheel.core.permissions import private_dirs, private_opener
from flywheel.core.storage import (
    FlywheelHome,
    StoragePath,
    atomic_path,
    is_remote,
    parquet_file,
    read_jsonl,
    read_table,
    write_json,
)
from flywheel.curation.versions import read_manifest
from flywheel.labeling.store import ReviewStore, decisions_table, items_table
from flywheel.models.registry import list_models

ERASURE_LOG = "erasures.jsonl"
SCANNED_ROOTS = ("warehouse", "quarantine", "datasets", "reports")
JSONL_ROOTS = ("labeling", "datasets", "reports")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]+")
_FIELD = r'"(interaction_id|user_id)"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)'
_FIELD_TEXT = re.compile(_FIELD)
_FIELD_BYTES = re.compile(_FIELD.encode())
_PLAIN_IID = re.compile(rb'"interaction_id"\s*:\s*"([^"\\]*)"')
_EXACT_COLUMNS = {"interaction_id": "interactions", "item_id": "items", "user_id": "users",
                  "example_id": "examples", "kept_example_id": "examples", "kept_instead": "examples"}
_TEXT_COLUMNS = ("lineage", "evidence", "raw", "detail", "payload")


@dataclass
class Subject:
    """Whom to erase: their ids (raw and pseudonyms), interactions, examples built from them, review items."""

    users: frozenset[str]
    interactions: set[str] = field(default_factory=set)
    examples: set[str] = field(default_factory=set)
    items: set[tuple[str, str]] = field(default_factory=set)  # (batch_id, item_id) removed from review
    _odd_key: tuple[int, int] = field(default=(-1, -1), repr=False)
    _odd: list[str] = field(default_factory=list, repr=False)

    @property
    def ids(self) -> set[str]:
        return self.interactions | self.examples

    def needles(self) -> list[bytes]:
        """Byte strings one of which a landing line of the user holds (its user_id value, raw or escaped)."""
        found = set()
        for user in self.users:
            found.add(user.encode("utf-8", "surrogatepass"))
            found.add(json.dumps(user)[1:-1].encode("ascii"))
        return sorted(found)

    def mentions(self, text: str | None) -> bool:
        """`text` names one of the user's interactions or examples (as a whole token; an id with other
        characters than letters, digits, `_` and `-` as a substring)."""
        if not text or not (self.interactions or self.examples):
            return False
        if any(t in self.interactions or t in self.examples for t in _TOKEN.findall(text)):
            return True
        return any(i in text for i in self._odd_ids())

    def _odd_ids(self) -> list[str]:
        key = (len(self.interactions), len(self.examples))
        if self._odd_key != key:
            self._odd_key, self._odd = key, [i for i in self.ids if not _PLAIN_ID.fullmatch(i)]
        return self._odd

    def owns_line(self, text: str) -> bool:
        """A raw JSON line (valid or not) whose `user_id` is the user's, or that names their ids."""
        return any(name == "user_id" and _value(v) in self.users for name, v in _FIELD_TEXT.findall(text)) \
            or self.mentions(text)


def _value(raw: str | bytes) -> str:
    """A JSON string or number as matched in a line -> its text (an undecodable string as it stands)."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError:
            return text[1:-1]
    return text


@dataclass
class ErasureReport:
    """What one erasure removed: rows per store, files changed, dataset versions amended, models to retrain."""

    erasure_id: str
    at: str
    rows: Counter[str] = field(default_factory=Counter)
    files: dict[str, int] = field(default_factory=dict)  # file (relative to the home) -> rows removed
    dataset_versions: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)  # version, dataset_version, status
    pending_files: list[str] = field(default_factory=list)  # live writers' .tmp files naming the user
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def record(self) -> dict[str, Any]:
        return {"erasure_id": self.erasure_id, "at": self.at, "rows": dict(sorted(self.rows.items())),
                "rows_total": self.total, "files": dict(sorted(self.files.items())), "dataset_versions": self.dataset_versions,
                "models_to_retrain": self.models, "pending_files": self.pending_files,
                "seconds": round(self.seconds, 3)}


# --- finding the user's interactions ---------------------------------------------------------------
def _landing_paths(home: FlywheelHome, stream: str, *, pending: bool = False) -> Iterator[StoragePath]:
    for day in landing_days(home, stream):
        for path in sorted(home.landing(stream, day).iterdir()):
            if path.is_file() and path.name.startswith(".") == pending and path.name.endswith(".tmp") == pending:
                yield path


def _line_owner(subject: Subject, line: bytes, needles: list[bytes]) -> tuple[bool, list[str]]:
    """(the line is the user's, the interaction ids it names) of a landing line."""
    if not any(n in line for n in needles):
        return False, []
    fields = _FIELD_BYTES.findall(line)
    mine = any(name == b"user_id" and _value(v) in subject.users for name, v in fields)
    return mine, [_value(v) for name, v in fields if name == b"interaction_id"] if mine else []


def _find_interactions(home: FlywheelHome, subject: Subject) -> None:
    """The user's interaction ids: their landing lines, warehouse rows and quarantined lines."""
    needles = subject.needles()
    for path in _landing_paths(home, INTERACTIONS):
        with path.open("rb") as fh:
            for line in fh:
                subject.interactions.update(_line_owner(subject, line, needles)[1])
    users = pa.array(sorted(subject.users), pa.string())
    for path in _parquet_files(home, "warehouse", INTERACTIONS):
        table = read_table(path, columns=["interaction_id", "user_id"])
        mine = table.filter(pc.fill_null(pc.is_in(table["user_id"], value_set=users), False))
        subject.interactions.update(mine["interaction_id"].to_pylist())
    for path in _parquet_files(home, "quarantine", INTERACTIONS):
        for raw in read_table(path, columns=["raw"])["raw"].to_pylist():
            fields = _FIELD_TEXT.findall(raw or "")
            if any(name == "user_id" and _value(v) in subject.users for name, v in fields):
                subject.interactions.update(_value(v) for name, v in fields if name == "interaction_id")


def _find_examples(home: FlywheelHome, subject: Subject) -> None:
    """Examples whose lineage names the user's interactions, or an example already found (to a fixpoint)."""
    pairs: list[tuple[str, str]] = []
    for root in SCANNED_ROOTS:
        for path in _parquet_files(home, root):
            names = parquet_file(path).schema_arrow.names
            if "example_id" in names and "lineage" in names:
                t = read_table(path, columns=["example_id", "lineage"])
                pairs += zip(t["example_id"].to_pylist(), t["lineage"].to_pylist(), strict=True)
    for path in _jsonl_files(home):
        pairs += [(r.get("example_id"), r.get("lineage")) for r in _json_rows(path) if r.get("example_id")]
    pairs = [(e, lin if isinstance(lin, str) else json.dumps(lin)) for e, lin in pairs if e and lin]
    while True:
        found = {e for e, lineage in pairs if e not in subject.examples and subject.mentions(lineage)}
        if not found:
            return
        subject.examples |= found


# --- tables and files ------------------------------------------------------------------------------
def _parquet_files(home: FlywheelHome, root: str, *parts: str) -> list[StoragePath]:
    base = home.path(root, *parts)
    return sorted(p for p in base.rglob("*.parquet") if not p.name.startswith(".")) if base.is_dir() else []


def _jsonl_files(home: FlywheelHome) -> list[StoragePath]:
    found = []
    for root in JSONL_ROOTS:
        base = home.path(root)
        if base.is_dir():
            found += [p for p in base.rglob("*.jsonl") if not p.name.startswith(".") and p.name != ERASURE_LOG]
    return sorted(found)


def _json_rows(path: StoragePath) -> list[dict[str, Any]]:
    try:
        return [r for r in read_jsonl(path) if isinstance(r, dict)]
    except (ValueError, UnicodeDecodeError):
        return []


def _doomed_rows(table: pa.Table, subject: Subject) -> pa.Array:
    """A boolean mask of the rows of `table` that are the user's (see the module)."""
    sets = {"interactions": subject.interactions, "items": subject.ids, "users": subject.users,
            "examples": subject.examples}
    mask = pa.array([False] * table.num_rows, pa.bool_())
    for name, kind in _EXACT_COLUMNS.items():
        if name in table.column_names and sets[kind] and pa.types.is_string(table.schema.field(name).type):
            hit = pc.is_in(table[name], value_set=pa.array(sorted(sets[kind]), pa.string()))
            mask = pc.or_(mask, pc.fill_null(hit, False))
    if "duplicate_ids" in table.column_names and subject.interactions:
        lists = table["duplicate_ids"].combine_chunks()
        hits = [any(i in subject.interactions for i in ids or ()) for ids in lists.to_pylist()]
        mask = pc.or_(mask, pa.array(hits, pa.bool_()))
    for name in _TEXT_COLUMNS:
        if name in table.column_names and pa.types.is_string(table.schema.field(name).type):
            check = subject.owns_line if name == "raw" else subject.mentions
            mask = pc.or_(mask, pa.array([check(v) for v in table[name].to_pylist()], pa.bool_()))
    return mask


def _scrub_parquet(home: FlywheelHome, path: StoragePath, subject: Subject, report: ErasureReport) -> int:
    """Rewrite a Parquet file without the user's rows (atomically: renamed into place, or uploaded as one
    object); the rows removed."""
    names = parquet_file(path).schema_arrow.names
    wanted = [n for n in (*_EXACT_COLUMNS, "duplicate_ids", *_TEXT_COLUMNS) if n in names]
    if not wanted:
        return 0
    doomed = _doomed_rows(read_table(path, columns=wanted), subject)
    removed = pc.sum(doomed).as_py() or 0
    if removed:
        table = read_table(path)
        with atomic_path(path) as tmp:
            pq.write_table(table.filter(pc.invert(doomed)), tmp, compression="zstd")
        _changed(home, path, removed, report)
    return removed


def _rewrite_lines(path: StoragePath, keep: Iterable[bytes]) -> None:
    """Replace a text file by `keep` (atomically: renamed into place, or uploaded as one object); an
    emptied file is deleted."""
    lines = list(keep)
    if not lines:
        path.unlink()
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.writelines(lines)


def _scrub_jsonl(home: FlywheelHome, path: StoragePath, subject: Subject, report: ErasureReport) -> None:
    with path.open("rb") as fh:
        lines = fh.readlines()
    keep = []
    for line in lines:
        text = line.decode("utf-8", "backslashreplace")
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        item = (obj.get("batch_id") or path.parent.name, obj.get("item_id")) if isinstance(obj, dict) else None
        if not (subject.owns_line(text) or item in subject.items):
            keep.append(line)
    if len(keep) < len(lines):
        _rewrite_lines(path, keep)
        _changed(home, path, len(lines) - len(keep), report)


def _scrub_landing(home: FlywheelHome, subject: Subject, report: ErasureReport) -> None:
    needles = subject.needles()
    for stream in (INTERACTIONS, FEEDBACK):
        for path in _landing_paths(home, stream):
            with path.open("rb") as fh:
                lines = fh.readlines()
            keep = [ln for ln in lines if not _landing_line_doomed(subject, ln, needles, stream)]
            if len(keep) < len(lines):
                _rewrite_lines(path, keep)
                _changed(home, path, len(lines) - len(keep), report, store=f"landing/{stream}")
        for path in _landing_paths(home, stream, pending=True):
            with path.open("rb") as fh:
                if any(_landing_line_doomed(subject, ln, needles, stream) for ln in fh):
                    report.pending_files.append(home.relative(path))


def _landing_line_doomed(subject: Subject, line: bytes, needles: list[bytes], stream: str) -> bool:
    """An interaction line of the user, or any line of one of their interactions (its feedback)."""
    if stream == INTERACTIONS and _line_owner(subject, line, needles)[0]:
        return True
    plain = _PLAIN_IID.search(line)
    if plain is not None and line.count(b'"interaction_id"') == 1:  # the common line: one id, no escapes
        return plain.group(1).decode("utf-8", "replace") in subject.interactions
    return any(name == b"interaction_id" and _value(v) in subject.interactions for name, v in _FIELD_BYTES.findall(line))


def _changed(home: FlywheelHome, path: StoragePath, rows: int, report: ErasureReport, store: str | None = None) -> None:
    """Count `rows` removed from `path`: per file, and per store (`warehouse/<table>`, `quarantine/<table>`,
    `reports/<name>`; `datasets/<file>` and `labeling/<file>` over every version and batch)."""
    rel = home.relative(path)
    parts = PurePosixPath(rel).parts
    if store is None:
        store = f"{parts[0]}/{parts[-1] if parts[0] in ('datasets', 'labeling') else parts[1]}"
    report.rows[store] += rows
    report.files[rel] = report.files.get(rel, 0) + rows


# --- the review database ---------------------------------------------------------------------------
def _scrub_review_store(db_url: str, subject: Subject, report: ErasureReport) -> None:
    """Delete the review items naming the user (and every decision on them); remember them in `subject.items`."""
    store = ReviewStore(db_url)
    engine = store.engine
    with engine.connect() as conn:
        rows = conn.execute(sa.select(items_table.c.batch_id, items_table.c.item_id, items_table.c.interaction_id,
                                      items_table.c.payload)).all()
    doomed: dict[str, list[str]] = {}
    for batch_id, item_id, iid, payload in rows:
        if iid in subject.interactions or item_id in subject.ids or subject.mentions(payload):
            doomed.setdefault(batch_id, []).append(item_id)
            subject.items.add((batch_id, item_id))
    if not doomed:
        return
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left readable
        for batch_id, ids in doomed.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                where_d = sa.and_(decisions_table.c.batch_id == batch_id, decisions_table.c.item_id.in_(chunk))
                report.rows["review/decisions"] += conn.execute(decisions_table.delete().where(where_d)).rowcount
                where_i = sa.and_(items_table.c.batch_id == batch_id, items_table.c.item_id.in_(chunk))
                report.rows["review/items"] += conn.execute(items_table.delete().where(where_i)).rowcount
    if sqlite:  # rebuild the file (no free page keeps an old copy) and empty the WAL
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# --- datasets and models ---------------------------------------------------------------------------
def _amend_datasets(home: FlywheelHome, report: ErasureReport) -> None:
    """Mark each dataset version that lost rows: an `erasures` entry in its manifest, a note on its card."""
    removed: dict[str, dict[str, int]] = {}
    for rel, rows in report.files.items():
        parts = PurePosixPath(rel).parts
        if parts[0] == "datasets" and len(parts) > 2:
            removed.setdefault(parts[1], {})["/".join(parts[2:])] = rows
    for version, files in sorted(removed.items()):
        manifest = read_manifest(home, version)
        if manifest is None:
            continue
        entry = {"at": report.at, "erasure_id": report.erasure_id, "rows_removed": files}
        manifest.setdefault("erasures", []).append(entry)
        write_json(manifest, home.dataset(version) / "manifest.json")
        card = home.dataset(version) / "card.md"
        if card.exists():
            note = (f"\n> Amended on {report.at[:10]} by erasure {report.erasure_id} (GDPR art. 17): one user's "
                    f"rows removed from {', '.join(sorted(files))}; models trained on this version are listed for "
                    "retraining.\n")
            _rewrite_lines(card, [card.read_bytes(), note.encode()])
        report.dataset_versions.append(version)


def _models_trained_on(home: FlywheelHome, db_url: str, versions: set[str]) -> list[dict[str, Any]]:
    """Model versions (registry and `models/*/manifest.json`) trained on one of the dataset `versions`."""
    found: dict[str, dict[str, Any]] = {}
    if not versions:
        return []
    for m in list_models(db_url):
        if m.dataset_version in versions:
            found[m.version] = {"version": m.version, "dataset_version": m.dataset_version, "status": m.status}
    models = home.path("models")
    for manifest in sorted(models.glob("*/manifest.json")) if models.is_dir() else []:
        try:
            dataset = json.loads(manifest.read_text(encoding="utf-8")).get("dataset_version")
        except (ValueError, UnicodeDecodeError):
            continue
        if dataset in versions:
            found.setdefault(manifest.parent.name, {"version": manifest.parent.name, "dataset_version": dataset,
                                                    "status": "not in the registry"})
    return [found[k] for k in sorted(found)]


def _append_log(home: FlywheelHome, record: dict[str, Any]) -> StoragePath:
    """Append one line to `reports/erasures.jsonl` (owner-only; on object storage, which cannot append,
    the log is read and uploaded again whole with the line added)."""
    path = home.reports() / ERASURE_LOG
    line = json.dumps(record, sort_keys=True) + "\n"
    if is_remote(path):
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        with atomic_path(path) as tmp:
            tmp.write_bytes(old + line.encode("utf-8"))
        return path
    private_dirs(path.parent)
    with open(path, "a", encoding="utf-8", opener=private_opener) as fh:
        fh.write(line)
    return path


# --- the entry point -------------------------------------------------------------------------------
def erase_user(home: FlywheelHome, db_url: str, config: CaptureConfig, user_id: str) -> ErasureReport:
    """Erase the user logged as `user_id` (the raw id) from every store (see the module); append the
    record to `reports/erasures.jsonl` and return it."""
    if not user_id or not user_id.strip():
        raise InputError("erase: the user id is empty")
    start = time.perf_counter()
    report = ErasureReport(uuid.uuid4().hex[:12], datetime.now(UTC).isoformat(timespec="seconds"))
    users = {user_id} | {p.pseudonym("user_id", user_id) for p in all_pseudonymizers(config)}
    subject = Subject(frozenset(users))
    recover_orphans(home, config.orphan_tmp_after_s)
    _find_interactions(home, subject)
    _find_examples(home, subject)
    _scrub_review_store(db_url, subject, report)
    for root in SCANNED_ROOTS:
        for path in _parquet_files(home, root):
            _scrub_parquet(home, path, subject, report)
    for path in _jsonl_files(home):
        _scrub_jsonl(home, path, subject, report)
    _scrub_landing(home, subject, report)
    _amend_datasets(home, report)
    report.models = _models_trained_on(home, db_url, set(report.dataset_versions))
    report.seconds = time.perf_counter() - start
    _append_log(home, report.record())
    return report
