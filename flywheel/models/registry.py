"""The model registry: versions and their status, the champion, promotion, rollback and eval-set
freezing. The score history (`model_evaluations`) is read and drawn in `flywheel.models.history`,
the champion's serving export written in `flywheel.models.serving`.

SQLAlchemy Core on any engine (`flywheel.core.storage.sql_engine(url)`: a SQLite file in the home by
default, PostgreSQL with FLYWHEEL_DATABASE_URL). Tables (all `model_*`):
- `model_versions`: one row per model version with status candidate | champion | retired | rejected;
- `model_events`: an append-only log of every status change, who did it and why (manual
  overrides included), and for champion changes the previous champion (what rollback returns to);
- `model_evaluations`: one row per evaluation cycle (the fixed-set score history);
- `model_eval_sets`: the frozen content hash of each eval-set version;
- `model_registry_lock`: one row that status-changing transactions lock.

One champion under any interleaving of processes: every status change runs in `_locked` (`BEGIN
IMMEDIATE` on SQLite, `SELECT ... FOR UPDATE` of the lock row elsewhere), its updates are guarded by
the status they expect (`UPDATE ... WHERE status = 'champion'`, rowcount checked), and a partial unique
index (`status` where status = 'champion') makes a second champion impossible; opening a database
creates that index, or refuses with the versions' names when the database already holds two.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flywheel.core.errors import StateError, require
from flywheel.core.storage import sql_engine

CANDIDATE, CHAMPION, RETIRED, REJECTED = "candidate", "champion", "retired", "rejected"
STATUSES = (CANDIDATE, CHAMPION, RETIRED, REJECTED)

metadata = sa.MetaData()

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("dataset_version", sa.String(64)),
    sa.Column("base_model", sa.Text),
    sa.Column("adapter_path", sa.Text),
    sa.Column("eval_set_hash", sa.String(64)),
    sa.Column("eval_set_version", sa.Integer),
    sa.Column("scores", sa.Text),  # JSON: {"overall": {metric: score}, "slices": {slice: {metric: score}}}
    sa.Column("gate_passed", sa.Boolean),
    sa.Column("gate_reasons", sa.Text),  # JSON list
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("promoted_by", sa.Text),
    sa.Column("promoted_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

ONE_CHAMPION_INDEX = "uq_model_versions_one_champion"
# at most one row with status 'champion' (a partial unique index, on SQLite and PostgreSQL alike)
sa.Index(ONE_CHAMPION_INDEX, model_versions.c.status, unique=True,
         sqlite_where=model_versions.c.status == CHAMPION, postgresql_where=model_versions.c.status == CHAMPION)

model_events = sa.Table(
    "model_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(32), nullable=False),  # evaluated | promoted | forced | rollback | retired
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("previous_champion", sa.String(64)),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

model_evaluations = sa.Table(
    "model_evaluations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("candidate", sa.String(64), nullable=False, index=True),
    sa.Column("champion", sa.String(64), nullable=False),  # a version, or `base:<model>`
    sa.Column("eval_set_version", sa.Integer, nullable=False),
    sa.Column("eval_set_hash", sa.String(64), nullable=False),
    sa.Column("primary_metric", sa.String(32), nullable=False),
    sa.Column("candidate_score", sa.Float),
    sa.Column("champion_score", sa.Float),
    sa.Column("diff", sa.Float),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("slices", sa.Text),  # JSON {slice: {"candidate": x, "champion": y}}
    sa.Column("gate_passed", sa.Boolean, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # passed | promoted | rejected
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

model_eval_sets = sa.Table(
    "model_eval_sets",
    metadata,
    sa.Column("eval_set_version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("slices", sa.Text),  # JSON {slice: count}
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


model_registry_lock = sa.Table(
    "model_registry_lock",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),  # one row, LOCK_ROW
)
LOCK_ROW = "status"


class RegistryError(StateError):
    """A registry operation that cannot be done (unknown version, refused promotion, nothing to roll back to)."""


@dataclass
class ModelRecord:
    """One row of `model_versions`."""

    version: str
    status: str
    dataset_version: str | None = None
    base_model: str | None = None
    adapter_path: str | None = None
    eval_set_hash: str | None = None
    eval_set_version: int | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    gate_passed: bool | None = None
    gate_reasons: list[str] = field(default_factory=list)
    reason: str | None = None
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> ModelRecord:
        m = dict(row._mapping)
        return cls(
            version=m["version"],
            status=m["status"],
            dataset_version=m["dataset_version"],
            base_model=m["base_model"],
            adapter_path=m["adapter_path"],
            eval_set_hash=m["eval_set_hash"],
            eval_set_version=m["eval_set_version"],
            scores=json.loads(m["scores"]) if m["scores"] else {},
            gate_passed=m["gate_passed"],
            gate_reasons=json.loads(m["gate_reasons"]) if m["gate_reasons"] else [],
            reason=m["reason"],
            promoted_by=m["promoted_by"],
            promoted_at=m["promoted_at"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )


def now_utc() -> datetime:
    return datetime.now(UTC)


def engine_for(engine_or_url: sa.Engine | str) -> sa.Engine:
    """An engine with the registry tables, the one-champion index and the lock row in place (accepts a
    URL or an engine). A database that already holds several champions is refused, naming them."""
    engine = sql_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        metadata.create_all(engine)
    except sa.exc.DBAPIError:  # another process created the tables between the check and the CREATE
        metadata.create_all(engine)
    with engine.connect() as conn:
        has_index = sa.inspect(conn).has_index(model_versions.name, ONE_CHAMPION_INDEX)
        has_lock_row = conn.execute(sa.select(model_registry_lock.c.name)
                                    .where(model_registry_lock.c.name == LOCK_ROW)).first() is not None
    if not has_index:
        _create_one_champion_index(engine)
    if not has_lock_row:
        try:
            with engine.begin() as conn:
                conn.execute(model_registry_lock.insert().values(name=LOCK_ROW))
        except sa.exc.IntegrityError:
            pass  # another process inserted it first
    return engine


def _create_one_champion_index(engine: sa.Engine) -> None:
    """Add the one-champion index to a registry created before it existed."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(model_versions.c.version, model_versions.c.promoted_at)
                            .where(model_versions.c.status == CHAMPION)
                            .order_by(model_versions.c.version)).all()
    if len(rows) > 1:
        names = ", ".join(f"{r.version} (promoted {r.promoted_at:%Y-%m-%d %H:%M:%S})" if r.promoted_at
                          else f"{r.version} (no promotion time)" for r in rows)
        raise RegistryError(
            f"model registry {engine.url.render_as_string(hide_password=True)}: {len(rows)} model versions are "
            f"champion at once: {names}. A registry holds one champion: retire all but the one to serve "
            f"(UPDATE model_versions SET status = 'retired' WHERE version IN (...)), then open it again")
    index = next(i for i in model_versions.indexes if i.name == ONE_CHAMPION_INDEX)
    try:
        with engine.begin() as conn:
            index.create(conn, checkfirst=True)
    except sa.exc.DBAPIError:
        with engine.connect() as conn:  # created by another process meanwhile: fine; else re-raise
            if not sa.inspect(conn).has_index(model_versions.name, ONE_CHAMPION_INDEX):
                raise


@contextmanager
def _locked(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction holding the registry's write lock from its first statement until it commits, so
    what it reads is still true when it writes: `BEGIN IMMEDIATE` on SQLite (pysqlite would begin only
    at the first write, after the reads), the lock row `SELECT ... FOR UPDATE` elsewhere (on PostgreSQL
    every later statement of the transaction sees what the previous holder committed). A racing
    champion that slips past anyway (a writer not using this lock) hits the one-champion index."""
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            conn.execute(sa.select(model_registry_lock.c.name).where(model_registry_lock.c.name == LOCK_ROW)
                         .with_for_update())
            yield conn
    except sa.exc.IntegrityError as exc:
        raise RegistryError(f"the registry refused a status change that would break one of its rules "
                            f"(one champion): {exc.orig}") from exc


def _set_status(conn: sa.Connection, version: str, expected: str | None, **values: Any) -> None:
    """Update `version` only while its status is still `expected` (a guarded write; it must hit one row)."""
    guard = model_versions.c.status == expected if expected is not None else model_versions.c.status.is_(None)
    done = conn.execute(model_versions.update().where(model_versions.c.version == version, guard).values(**values))
    if done.rowcount != 1:
        raise RegistryError(f"model version {version!r} is no longer {expected}: it changed while this "
                            "operation ran; nothing was changed, try again")


def _read(conn: sa.Connection, version: str) -> ModelRecord:
    row = conn.execute(sa.select(model_versions).where(model_versions.c.version == version)).first()
    require(row is not None, f"model version {version!r} vanished from the registry while it was written")
    return ModelRecord.from_row(row)


def default_actor() -> str:
    """Who is acting when nobody says: $USER, else `unknown`."""
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


# --- reads -----------------------------------------------------------------------------------
def get_model(engine_or_url: sa.Engine | str, version: str) -> ModelRecord | None:
    engine = engine_for(engine_or_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(model_versions).where(model_versions.c.version == version)).first()
    return ModelRecord.from_row(row) if row else None


def current_champion(engine_or_url: sa.Engine | str) -> ModelRecord | None:
    """The one model with status `champion`, or None before the first promotion."""
    engine = engine_for(engine_or_url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(model_versions)
            .where(model_versions.c.status == CHAMPION)
            .order_by(model_versions.c.promoted_at.desc())
        ).first()
    return ModelRecord.from_row(row) if row else None


def list_models(engine_or_url: sa.Engine | str) -> list[ModelRecord]:
    """Every registered version, newest first."""
    engine = engine_for(engine_or_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(model_versions).order_by(model_versions.c.created_at.desc())).all()
    return [ModelRecord.from_row(r) for r in rows]


def model_events_log(engine_or_url: sa.Engine | str, version: str | None = None) -> list[dict[str, Any]]:
    """The status-change log (oldest first), optionally of one version."""
    engine = engine_for(engine_or_url)
    query = sa.select(model_events).order_by(model_events.c.id)
    if version is not None:
        query = query.where(model_events.c.version == version)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# --- writes ----------------------------------------------------------------------------------
def _event(conn: sa.Connection, version: str, action: str, from_status: str | None, to_status: str,
           actor: str, reason: str | None, previous_champion: str | None = None) -> None:
    conn.execute(
        model_events.insert().values(
            version=version, action=action, from_status=from_status, to_status=to_status,
            previous_champion=previous_champion, actor=actor, reason=reason, at=now_utc(),
        )
    )


def record_candidate(
    engine_or_url: sa.Engine | str,
    version: str,
    *,
    dataset_version: str | None,
    base_model: str | None,
    adapter_path: str | None,
    eval_set_hash: str,
    eval_set_version: int,
    scores: dict[str, Any],
    gate_passed: bool,
    gate_reasons: list[str],
    actor: str = "evaluation",
) -> ModelRecord:
    """Record an evaluated version: status `candidate` when it passed the gate, else `rejected` with
    the reasons. The current champion's status is never changed by a re-evaluation."""
    engine = engine_for(engine_or_url)
    now = now_utc()
    status = CANDIDATE if gate_passed else REJECTED
    reason = "passed the gate" if gate_passed else "; ".join(gate_reasons) or "failed the gate"
    values = {
        "dataset_version": dataset_version, "base_model": base_model, "adapter_path": adapter_path,
        "eval_set_hash": eval_set_hash, "eval_set_version": eval_set_version,
        "scores": json.dumps(scores, sort_keys=True), "gate_passed": gate_passed,
        "gate_reasons": json.dumps(gate_reasons), "updated_at": now,
    }
    with _locked(engine) as conn:
        row = conn.execute(sa.select(model_versions).where(model_versions.c.version == version)).first()
        if row is None:
            conn.execute(model_versions.insert().values(version=version, status=status, reason=reason,
                                                        created_at=now, **values))
            _event(conn, version, "evaluated", None, status, actor, reason)
        else:
            old = row._mapping["status"]
            if old == CHAMPION:  # a re-evaluation of the champion leaves its record as it was
                _event(conn, version, "evaluated", old, old, actor, f"re-evaluated: {reason}")
            else:
                _set_status(conn, version, old, status=status, reason=reason, **values)
                _event(conn, version, "evaluated", old, status, actor, reason)
        record = _read(conn, version)
    return record


def promote(
    engine_or_url: sa.Engine | str,
    version: str,
    *,
    by: str | None = None,
    reason: str,
    force: bool = False,
) -> ModelRecord:
    """Make `version` the champion (the old champion becomes `retired`).

    A version that failed the gate (`rejected`) is refused unless `force=True`, which is logged as a
    manual override with who and why."""
    engine = engine_for(engine_or_url)
    actor = by or default_actor()
    if not reason or not reason.strip():
        raise RegistryError("a promotion needs a reason")
    with _locked(engine) as conn:
        row = conn.execute(sa.select(model_versions).where(model_versions.c.version == version)).first()
        if row is None:
            raise RegistryError(f"model version {version!r} is not in the registry")
        m = row._mapping
        if m["status"] == CHAMPION:
            raise RegistryError(f"model version {version!r} is already the champion")
        failed_gate = m["status"] == REJECTED or m["gate_passed"] is False
        if failed_gate and not force:
            reasons = "; ".join(json.loads(m["gate_reasons"] or "[]")) or m["reason"] or "failed the gate"
            raise RegistryError(
                f"model version {version!r} failed the gate ({reasons}); promote it anyway only with --force and a reason"
            )
        old = conn.execute(sa.select(model_versions.c.version).where(model_versions.c.status == CHAMPION)).scalars().all()
        now = now_utc()
        require(len(old) <= 1, f"the registry holds {len(old)} champions: {old}")
        for prev in old:
            _set_status(conn, prev, CHAMPION, status=RETIRED, updated_at=now, reason=f"replaced by {version}")
            _event(conn, prev, "retired", CHAMPION, RETIRED, actor, f"replaced by {version}")
        action = "forced" if failed_gate else "promoted"
        full_reason = f"manual override: {reason}" if failed_gate else reason
        _set_status(conn, version, m["status"], status=CHAMPION, promoted_by=actor, promoted_at=now,
                    updated_at=now, reason=full_reason)
        _event(conn, version, action, m["status"], CHAMPION, actor, full_reason,
               previous_champion=old[0] if old else None)
        conn.execute(model_evaluations.update()
                     .where(model_evaluations.c.candidate == version, model_evaluations.c.gate_passed.is_(True))
                     .values(outcome="promoted"))
        record = _read(conn, version)
    return record


def _previous_of(conn: sa.Connection, version: str) -> str | None:
    """The champion before `version` took over (from its latest champion-making event)."""
    return conn.execute(
        sa.select(model_events.c.previous_champion)
        .where(model_events.c.version == version, model_events.c.to_status == CHAMPION)
        .order_by(model_events.c.id.desc())
        .limit(1)
    ).scalar()


def rollback(engine_or_url: sa.Engine | str, *, by: str | None = None, reason: str = "rollback") -> tuple[ModelRecord, ModelRecord]:
    """Champion -> the previous champion; the current one becomes `retired`. Returns (retired, champion)."""
    engine = engine_for(engine_or_url)
    actor = by or default_actor()
    with _locked(engine) as conn:
        current = conn.execute(sa.select(model_versions.c.version).where(model_versions.c.status == CHAMPION)).scalar()
        if current is None:
            raise RegistryError("there is no champion to roll back")
        previous = _previous_of(conn, current)
        if previous is None:
            raise RegistryError(f"champion {current!r} has no previous champion to roll back to")
        prev_status = conn.execute(sa.select(model_versions.c.status).where(model_versions.c.version == previous)).scalar()
        if prev_status is None:
            raise RegistryError(f"champion {current!r} would roll back to {previous!r}, which is not in the registry")
        now = now_utc()
        _set_status(conn, current, CHAMPION, status=RETIRED, updated_at=now, reason=f"rolled back: {reason}")
        _event(conn, current, "retired", CHAMPION, RETIRED, actor, f"rolled back: {reason}")
        restored = f"restored by rollback from {current}: {reason}"
        _set_status(conn, previous, prev_status, status=CHAMPION, updated_at=now, promoted_at=now, promoted_by=actor,
                    reason=restored)
        _event(conn, previous, "rollback", prev_status, CHAMPION, actor, restored,
               previous_champion=_previous_of(conn, previous))
        retired, champion = _read(conn, current), _read(conn, previous)
    return retired, champion


# --- eval-set freezing -----------------------------------------------------------------------
def frozen_eval_set(engine_or_url: sa.Engine | str, eval_set_version: int) -> dict[str, Any] | None:
    """The recorded {content_hash, items, slices, created_at} of an eval-set version, or None."""
    engine = engine_for(engine_or_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(model_eval_sets).where(model_eval_sets.c.eval_set_version == eval_set_version)).first()
    if row is None:
        return None
    m = dict(row._mapping)
    m["slices"] = json.loads(m["slices"]) if m["slices"] else {}
    return m


def freeze_eval_set(engine_or_url: sa.Engine | str, eval_set_version: int, content_hash: str, items: int,
                    slices: dict[str, int]) -> dict[str, Any]:
    """Record the hash of an eval-set version the first time it is seen; returns the recorded entry
    (which differs from `content_hash` when the file changed without a new version)."""
    engine = engine_for(engine_or_url)
    existing = frozen_eval_set(engine, eval_set_version)
    if existing is not None:
        return existing
    try:
        with engine.begin() as conn:
            conn.execute(model_eval_sets.insert().values(
                eval_set_version=eval_set_version, content_hash=content_hash, items=items,
                slices=json.dumps(slices, sort_keys=True), created_at=now_utc()))
    except sa.exc.IntegrityError:
        pass  # another run froze it first
    entry = frozen_eval_set(engine, eval_set_version)
    require(entry is not None, f"eval set version {eval_set_version} was frozen but cannot be read back")
    return entry
