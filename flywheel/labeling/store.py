"""The decision store: review batches, their items and the reviewers' decisions (SQLAlchemy Core).

SQLite by default, PostgreSQL when `FLYWHEEL_DATABASE_URL` is set. Tables (all `review_*`):

- `review_batches`: one row per batch (`weekly` batches from traffic, `sample` batches of any source),
  with the rubric shown to reviewers and whether it was closed by hand.
- `review_items`: the items of a batch, in review order (the item's content is stored as JSON).
- `review_decisions`: one row per (batch, item, reviewer), upserted, so two reviewers working at once
  lose nothing and a reviewer who changes their mind updates their own row.

Everything written is checked first, so the database never sees what it cannot store: ids of at most
`MAX_ID_CHARS` characters, and no NUL character or lone surrogate in any text (PostgreSQL and UTF-8 refuse
them). Fixes and reasons are bounded by the project's `labeling.max_fix_chars` / `max_reason_chars`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flywheel.config import LabelingConfig
from flywheel.core.errors import InputError
from flywheel.core.records import MAX_ID_CHARS
from flywheel.core.storage import sql_engine

VERDICTS: tuple[str, ...] = ("pass", "fix", "reject")
MAX_NAME_CHARS = 128  # a reviewer's name (who decided, who closed a batch)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL (PostgreSQL text) and lone surrogates (not UTF-8)

metadata = sa.MetaData()

batches_table = sa.Table(
    "review_batches",
    metadata,
    sa.Column("batch_id", sa.String(MAX_ID_CHARS), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # weekly | sample | conflict
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rubric", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.Text, nullable=True),  # where a sample batch came from
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closed_by", sa.String(MAX_NAME_CHARS), nullable=True),
    sa.Column("meta", sa.Text, nullable=False, default="{}"),  # JSON: selection counts
)

items_table = sa.Table(
    "review_items",
    metadata,
    sa.Column("batch_id", sa.String(MAX_ID_CHARS), sa.ForeignKey("review_batches.batch_id"), primary_key=True),
    sa.Column("item_id", sa.String(MAX_ID_CHARS), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # correction | negative | low_confidence | control | sample
    sa.Column("interaction_id", sa.String(MAX_ID_CHARS), nullable=True),
    sa.Column("input_key", sa.Text, nullable=False),  # normalized input, for "already reviewed"
    sa.Column("payload", sa.Text, nullable=False),  # JSON of the whole item
    sa.Index("ix_review_items_interaction", "interaction_id"),
    sa.Index("ix_review_items_input_key", "input_key"),
)

decisions_table = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(MAX_ID_CHARS), nullable=False),
    sa.Column("item_id", sa.String(MAX_ID_CHARS), nullable=False),
    sa.Column("reviewer", sa.String(MAX_NAME_CHARS), nullable=False),
    sa.Column("verdict", sa.String(8), nullable=False),
    sa.Column("text", sa.Text, nullable=True),  # the edited answer of a fix
    sa.Column("reason", sa.Text, nullable=True),  # why it was rejected
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("batch_id", "item_id", "reviewer", name="uq_review_decision_item_reviewer"),
    sa.ForeignKeyConstraint(["batch_id", "item_id"], ["review_items.batch_id", "review_items.item_id"]),
    sa.CheckConstraint("verdict IN ('pass', 'fix', 'reject')", name="ck_review_decision_verdict"),
    # progress reads the last update from this index, never the rows (SQLite would walk a long fix's pages)
    sa.Index("ix_review_decisions_batch_updated", "batch_id", "updated_at"),
)


class ReviewError(InputError):
    """A decision or batch operation that cannot be applied (the message says why)."""


class UnknownBatchError(ReviewError):
    """No batch of that id in the decision store."""


class UnknownItemError(ReviewError):
    """No item of that id in the batch."""


class BatchClosedError(ReviewError):
    """The batch was closed by hand: it takes no more decisions."""


class UnusableTextError(ReviewError):
    """Text that cannot be stored: a NUL character, a lone surrogate, or longer than its limit."""


def text_problem(value: str, what: str, max_chars: int | None = None) -> str | None:
    """Why `value` cannot be stored as `what` (a NUL character, a lone surrogate, too long), else None."""
    bad = _UNSTORABLE.search(value)
    if bad:
        kind = "a NUL character" if bad.group() == "\x00" else f"a lone surrogate (U+{ord(bad.group()):04X})"
        return f"{what} contains {kind} at position {bad.start()}; remove it"
    if max_chars is not None and len(value) > max_chars:
        return f"{what} is {len(value):,} characters long; at most {max_chars:,} are accepted"
    return None


def id_problem(value: Any, what: str = "id") -> str | None:
    """Why `value` cannot be stored as an id (not a non-empty string of at most MAX_ID_CHARS), else None."""
    if not isinstance(value, str) or not value:
        return f"{what} {value!r:.40}: expected a non-empty string"
    return text_problem(value, f"{what} {value[:40]!r}{'...' if len(value) > 40 else ''}", MAX_ID_CHARS)


@dataclass(frozen=True)
class Decision:
    """One reviewer's decision on one item."""

    batch_id: str
    item_id: str
    reviewer: str
    verdict: str
    text: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    kind: str
    created_at: datetime
    rubric: str
    source: str | None
    closed_at: datetime | None
    closed_by: str | None
    meta: dict[str, Any]


@dataclass(frozen=True)
class BatchProgress:
    """How far review of a batch has come."""

    batch_id: str
    items: int
    decided: int  # items with at least one decision
    decisions: int  # decision rows (several reviewers may decide one item)
    closed: bool
    last_update: datetime | None

    @property
    def complete(self) -> bool:
        """Every item decided, or the batch closed by hand."""
        return self.closed or (self.items > 0 and self.decided >= self.items)

    @property
    def state(self) -> str:
        return "closed" if self.closed else ("complete" if self.complete else "open")

    @property
    def completion_key(self) -> str:
        """Changes whenever a decision is added or changed, or the batch is closed."""
        last = self.last_update.isoformat() if self.last_update else "-"
        return f"{self.state}:{self.decisions}:{last}"


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class ReviewStore:
    """The decision store at one SQLAlchemy URL (tables are created on first use)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sql_engine(url)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:  # stores created before the index existed get it too
            for index in decisions_table.indexes:
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))

    def __repr__(self) -> str:
        return f"ReviewStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # --- batches ------------------------------------------------------------------------------
    def batch(self, batch_id: str) -> BatchInfo:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(batches_table).where(batches_table.c.batch_id == batch_id)).mappings().first()
        if row is None:
            raise UnknownBatchError(f"batch {batch_id!r} not found in the decision store")
        return BatchInfo(
            batch_id=row["batch_id"], kind=row["kind"], created_at=_utc(row["created_at"]), rubric=row["rubric"],
            source=row["source"], closed_at=_utc(row["closed_at"]), closed_by=row["closed_by"],
            meta=json.loads(row["meta"] or "{}"),
        )

    def closed_at(self, batch_id: str) -> datetime | None:
        """When the batch was closed by hand (None: open); reads nothing else of the batch."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(batches_table.c.closed_at).where(batches_table.c.batch_id == batch_id)
            ).first()
        if row is None:
            raise UnknownBatchError(f"batch {batch_id!r} not found in the decision store")
        return _utc(row[0])

    def has_batch(self, batch_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(batches_table.c.batch_id).where(batches_table.c.batch_id == batch_id)
            ).first() is not None

    def batch_ids(self, kind: str | None = None) -> list[str]:
        q = sa.select(batches_table.c.batch_id).order_by(batches_table.c.batch_id)
        if kind:
            q = q.where(batches_table.c.kind == kind)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def register_batch(
        self,
        batch_id: str,
        items: Sequence[dict[str, Any]],
        *,
        kind: str,
        rubric: str = "",
        source: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Write a batch and its items (each needs `item_id`, `kind`, `input_key`; `interaction_id` optional).

        Re-registering a batch replaces its items, unless reviewing has begun (then `ReviewError`). Ids
        that cannot be stored (over MAX_ID_CHARS, NUL, lone surrogates) or repeated are refused with
        `ReviewError` before anything is written.
        """
        problems = [p for p in [id_problem(batch_id, "batch id")] if p]
        ids = [it["item_id"] for it in items]
        for pos, it in enumerate(items):
            checks = [("item_id", it["item_id"])] + ([("interaction_id", it["interaction_id"])]
                                                     if it.get("interaction_id") is not None else [])
            problems += [f"item {pos}: {p}" for key, value in checks if (p := id_problem(value, key))]
        if len(set(ids)) != len(ids):
            problems.append("duplicate item ids")
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise ReviewError(f"batch {batch_id[:MAX_ID_CHARS]!r}: {'; '.join(problems[:5])}{more}")
        with self.engine.begin() as conn:
            started = conn.execute(
                sa.select(sa.func.count()).select_from(decisions_table).where(decisions_table.c.batch_id == batch_id)
            ).scalar_one()
            if started:
                raise ReviewError(f"batch {batch_id!r} already has {started} decisions; it cannot be replaced")
            conn.execute(items_table.delete().where(items_table.c.batch_id == batch_id))
            conn.execute(batches_table.delete().where(batches_table.c.batch_id == batch_id))
            conn.execute(
                batches_table.insert().values(
                    batch_id=batch_id, kind=kind, created_at=_now(), rubric=rubric, source=source,
                    meta=json.dumps(meta or {}, sort_keys=True, default=str),
                )
            )
            if items:
                conn.execute(
                    items_table.insert(),
                    [
                        {
                            "batch_id": batch_id, "item_id": it["item_id"], "position": pos, "kind": it["kind"],
                            "interaction_id": it.get("interaction_id"), "input_key": it["input_key"],
                            "payload": json.dumps(it, ensure_ascii=False, default=str),
                        }
                        for pos, it in enumerate(items)
                    ],
                )

    def close_batch(self, batch_id: str, closed_by: str = "cli") -> BatchInfo:
        """Close a batch by hand: it counts as complete even with undecided items."""
        problem = text_problem(closed_by, "the closer's name", MAX_NAME_CHARS)
        if problem:
            raise UnusableTextError(problem)
        self.batch(batch_id)
        with self.engine.begin() as conn:
            conn.execute(
                batches_table.update()
                .where(batches_table.c.batch_id == batch_id, batches_table.c.closed_at.is_(None))
                .values(closed_at=_now(), closed_by=closed_by)
            )
        return self.batch(batch_id)

    def items(self, batch_id: str) -> list[dict[str, Any]]:
        """The items of a batch in review order (the dicts given to `register_batch`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(items_table.c.payload).where(items_table.c.batch_id == batch_id).order_by(items_table.c.position)
            )
            return [json.loads(r[0]) for r in rows]

    def has_item(self, batch_id: str, item_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(items_table.c.item_id).where(items_table.c.batch_id == batch_id, items_table.c.item_id == item_id)
            ).first() is not None

    def item_ids(self, batch_id: str) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(items_table.c.item_id).where(items_table.c.batch_id == batch_id).order_by(items_table.c.position)
            )
            return [r[0] for r in rows]

    # --- decisions ----------------------------------------------------------------------------
    def _upsert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            stmt = postgresql.insert(decisions_table)
        elif dialect == "sqlite":
            stmt = sqlite.insert(decisions_table)
        else:  # pragma: no cover - other databases: update-then-insert
            for row in rows:
                res = conn.execute(
                    decisions_table.update()
                    .where(
                        decisions_table.c.batch_id == row["batch_id"], decisions_table.c.item_id == row["item_id"],
                        decisions_table.c.reviewer == row["reviewer"],
                    )
                    .values(verdict=row["verdict"], text=row["text"], reason=row["reason"], updated_at=row["updated_at"])
                )
                if res.rowcount == 0:
                    conn.execute(decisions_table.insert().values(**row))
            return
        stmt = stmt.on_conflict_do_update(
            index_elements=["batch_id", "item_id", "reviewer"],
            set_={
                "verdict": stmt.excluded.verdict, "text": stmt.excluded.text, "reason": stmt.excluded.reason,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        conn.execute(stmt, rows)

    def validate_decision(
        self, batch_id: str, item_id: Any, reviewer: Any, verdict: Any, text: Any = None, reason: Any = None,
        *, known_items: set[str] | None = None, limits: LabelingConfig | None = None,
    ) -> dict[str, Any]:
        """Check one decision without writing it; returns the row to store or raises `ReviewError`
        (`UnusableTextError` for text that cannot be stored; limits from `limits`, else the defaults).
        Without `known_items` the batch is read (closed?) and the one item looked up."""
        limits = limits or LabelingConfig()
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise ReviewError("reviewer name missing")
        for value, what, most in ((reviewer.strip(), "the reviewer name", MAX_NAME_CHARS),
                                  (text, "the fixed answer (text)", limits.max_fix_chars),
                                  (reason, "the reason", limits.max_reason_chars)):
            if value is not None and not isinstance(value, str):
                raise ReviewError(f"{what} must be a string")
            if value is not None and (problem := text_problem(value, what, most)):
                raise UnusableTextError(problem)
        if verdict not in VERDICTS:
            raise ReviewError(f"verdict {verdict!r:.40} is not one of pass, fix, reject")
        if not isinstance(item_id, str) or id_problem(item_id) is not None:
            raise UnknownItemError(f"unknown item {item_id!r:.60}: not in batch {batch_id!r}")
        if known_items is None:
            closed = self.closed_at(batch_id)
            if closed is not None:
                raise BatchClosedError(f"batch {batch_id!r} was closed on {closed:%Y-%m-%d %H:%M} UTC")
            if not self.has_item(batch_id, item_id):
                raise UnknownItemError(f"unknown item {item_id!r}: not in batch {batch_id!r}")
        elif item_id not in known_items:
            raise UnknownItemError(f"unknown item {item_id!r}: not in batch {batch_id!r}")
        if verdict == "fix" and (text is None or not text.strip()):
            raise ReviewError("a fix needs the edited answer (text)")
        now = _now()
        return {
            "batch_id": batch_id, "item_id": item_id, "reviewer": reviewer.strip(), "verdict": verdict,
            "text": text if verdict == "fix" else None,
            "reason": (reason.strip() or None) if (verdict == "reject" and reason) else None,
            "created_at": now, "updated_at": now,
        }

    def record_decisions(self, rows: Iterable[dict[str, Any]]) -> int:
        """Upsert already validated decision rows in ONE transaction (all or nothing)."""
        rows = list(rows)
        if rows:
            with self.engine.begin() as conn:
                self._upsert(conn, rows)
        return len(rows)

    def decisions(self, batch_id: str, reviewer: str | None = None, item_id: str | None = None) -> list[Decision]:
        """All decisions of a batch (or of one reviewer, or on one item), oldest first."""
        q = sa.select(decisions_table).where(decisions_table.c.batch_id == batch_id)
        if reviewer is not None:
            q = q.where(decisions_table.c.reviewer == reviewer)
        if item_id is not None:
            q = q.where(decisions_table.c.item_id == item_id)
        q = q.order_by(decisions_table.c.updated_at, decisions_table.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [
            Decision(
                batch_id=r["batch_id"], item_id=r["item_id"], reviewer=r["reviewer"], verdict=r["verdict"],
                text=r["text"], reason=r["reason"], created_at=_utc(r["created_at"]), updated_at=_utc(r["updated_at"]),
            )
            for r in rows
        ]

    def decided_item_ids(self, batch_id: str) -> list[str]:
        """The items of a batch with a decision by anyone (their ids only: no decision text is read)."""
        q = (sa.select(decisions_table.c.item_id).distinct().where(decisions_table.c.batch_id == batch_id)
             .order_by(decisions_table.c.item_id))
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def progress(self, batch_id: str) -> BatchProgress:
        closed = self.closed_at(batch_id)
        with self.engine.connect() as conn:
            n_items = conn.execute(
                sa.select(sa.func.count()).select_from(items_table).where(items_table.c.batch_id == batch_id)
            ).scalar_one()
            # two queries, each answered from an index: no decision row (and no fix text) is read
            decided, n_dec = conn.execute(
                sa.select(sa.func.count(sa.distinct(decisions_table.c.item_id)), sa.func.count())
                .where(decisions_table.c.batch_id == batch_id)
            ).one()
            last = conn.execute(
                sa.select(sa.func.max(decisions_table.c.updated_at)).where(decisions_table.c.batch_id == batch_id)
            ).scalar_one()
        return BatchProgress(
            batch_id=batch_id, items=n_items, decided=decided, decisions=n_dec,
            closed=closed is not None, last_update=_utc(last),
        )

    def reviewed_keys(self, exclude_batch: str | None = None) -> tuple[set[str], set[str]]:
        """(interaction ids, normalized inputs) already taken care of by another batch.

        An item counts when it has a decision, or when it waits in another batch that is still open
        (so it is not queued twice). Items of batches closed undecided may be sent again.
        """
        decided = sa.select(decisions_table.c.batch_id, decisions_table.c.item_id).distinct().subquery()
        q = (
            sa.select(items_table.c.interaction_id, items_table.c.input_key)
            .select_from(
                items_table.join(batches_table, batches_table.c.batch_id == items_table.c.batch_id).outerjoin(
                    decided, sa.and_(decided.c.batch_id == items_table.c.batch_id, decided.c.item_id == items_table.c.item_id)
                )
            )
            .where(sa.or_(decided.c.item_id.is_not(None), batches_table.c.closed_at.is_(None)))
        )
        if exclude_batch is not None:
            q = q.where(items_table.c.batch_id != exclude_batch)
        ids: set[str] = set()
        keys: set[str] = set()
        with self.engine.connect() as conn:
            for iid, key in conn.execute(q):
                if iid:
                    ids.add(iid)
                if key:
                    keys.add(key)
        return ids, keys
