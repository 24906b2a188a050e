"""Where flywheel keeps its data: paths under FLYWHEEL_HOME, atomic writes, DuckDB over Parquet, SQL state.

Layout under the home (see ARCHITECTURE.md):
`landing/`, `warehouse/<asset>/<partition>.parquet`, `quarantine/<asset>/<partition>.parquet`,
`generated/<kind>/<partition>.jsonl`, `labeling/<batch>/`, `datasets/<version>/`, `models/<version>/`, `reports/`.
Every write goes to a temporary file beside the target and is renamed into place, so a reader never
sees half a file and re-running a partition replaces its output. Files are created 0600 and folders
0700 (`flywheel.core.permissions`), the SQLite database too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from flywheel.core.errors import InputError
from flywheel.core.permissions import private_dirs, touch_private

DEFAULT_HOME = ".flywheel"
DATABASE_URL_ENV = "FLYWHEEL_DATABASE_URL"
HOME_ENV = "FLYWHEEL_HOME"
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


class FlywheelHome:
    """The data root of one flywheel project."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        scheme = _URL_SCHEME.match(text)
        if scheme and scheme.group(1).lower() == "file":
            text = text[len("file://"):]
        elif scheme:
            # a path like `s3:/bucket/home` would be created in the working directory and read nothing
            raise InputError(f"FLYWHEEL_HOME={text}: {scheme.group(1)}:// homes are not supported yet; use a local "
                             "path or file://, or mount the bucket as a folder (docs/deploy.md)")
        self.root = Path(text).expanduser().resolve()

    @classmethod
    def from_env(cls, explicit: str | os.PathLike[str] | None = None) -> FlywheelHome:
        """`explicit` when given, else `$FLYWHEEL_HOME`, else `./.flywheel`: the one place the home is resolved."""
        return cls(explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME)

    def __repr__(self) -> str:
        return f"FlywheelHome({str(self.root)!r})"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def relative(self, path: str | os.PathLike[str]) -> str:
        """`path` as stored in pointers, the registry and exports: relative to the home (POSIX) when it lies
        inside it, so a copied or moved home still works; absolute otherwise (a model outside the home)."""
        p = Path(path)
        p = p if p.is_absolute() else self.root / p
        try:
            return p.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(p.resolve())

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A stored path (see `relative`) as a path on this machine: relative ones under this home."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    # --- well-known places -------------------------------------------------------------------
    def landing(self, stream: str, day: str | None = None) -> Path:
        return self.path("landing", stream, day) if day else self.path("landing", stream)

    def warehouse(self, asset: str, partition: str | None = None) -> Path:
        base = self.path("warehouse", asset)
        return base / f"{partition}.parquet" if partition else base

    def quarantine(self, asset: str, partition: str | None = None) -> Path:
        base = self.path("quarantine", asset)
        return base / f"{partition}.parquet" if partition else base

    def generated(self, kind: str, partition: str | None = None) -> Path:
        """`generated/<kind>/<partition>.jsonl`: a generation run's examples (kind: synthetic | distilled)."""
        base = self.path("generated", kind)
        return base / f"{partition}.jsonl" if partition else base

    def labeling(self, batch: str) -> Path:
        return self.path("labeling", batch)

    def dataset(self, version: str) -> Path:
        return self.path("datasets", version)

    def model(self, version: str) -> Path:
        return self.path("models", version)

    def reports(self) -> Path:
        return self.path("reports")

    def database_url(self, explicit: str | None = None) -> str:
        """`explicit` when given, else `FLYWHEEL_DATABASE_URL` when set, else a SQLite file in the home."""
        url = explicit or os.environ.get(DATABASE_URL_ENV)
        if url:
            return url
        private_dirs(self.root)
        return f"sqlite:///{self.path('flywheel.db')}"

    def warehouse_files(self, asset: str, partitions: Iterable[str]) -> list[Path]:
        """The existing Parquet files of `asset` for the given partition keys."""
        files = [self.warehouse(asset, p) for p in partitions]
        return [f for f in files if f.exists()]


# --- atomic writes ---------------------------------------------------------------------------
@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path (mode 0600) beside `target`; on success it is renamed onto `target`."""
    target = Path(target)
    private_dirs(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; on success it replaces `target` whole.

    An interrupted writer leaves only a hidden temp folder (mode 0700), never a half-written `target`."""
    target = Path(target)
    private_dirs(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(table: pa.Table, target: str | os.PathLike[str]) -> Path:
    """Write a table atomically (temp file + rename)."""
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(target)


def read_parquet(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], schema: pa.Schema | None = None) -> pa.Table:
    """Read one or several Parquet files into one table (an empty table of `schema` when none exist)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    existing = [str(p) for p in paths if Path(p).exists()]
    if not existing:
        if schema is None:
            return pa.table({})
        return schema.empty_table()
    tables = [pq.read_table(p) for p in existing]
    if schema is not None:
        tables = [t.select(schema.names).cast(schema) for t in tables]
    return pa.concat_tables(tables, promote_options="default")


def write_text(text: str, target: str | os.PathLike[str]) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(obj: Any, target: str | os.PathLike[str]) -> Path:
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", target)


def write_jsonl(rows: Iterable[dict[str, Any]], target: str | os.PathLike[str]) -> Path:
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return Path(target)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --- engines ---------------------------------------------------------------------------------
def duckdb_connection(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for queries over the home's Parquet files."""
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


_ENGINES: dict[str, sa.Engine] = {}


def normalize_database_url(url: str) -> str:
    """Plain `postgresql://` / `postgres://` URLs use psycopg2 (the driver flywheel installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def sql_engine(url: str) -> sa.Engine:
    """A cached SQLAlchemy engine for the decision store and the model registry."""
    url = normalize_database_url(url)
    engine = _ENGINES.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            database = sa.engine.make_url(url).database
            if database and database != ":memory:" and not database.startswith("file:"):
                touch_private(database)  # SQLite gives its -wal and -shm files the database's mode
            engine = sa.create_engine(url, connect_args={"timeout": 30})

            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        _ENGINES[url] = engine
    return engine
