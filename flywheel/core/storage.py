"""Where flywheel keeps its data: paths under FLYWHEEL_HOME, atomic writes, DuckDB over Parquet, SQL state.

Layout under the home (see ARCHITECTURE.md):
`landing/`, `warehouse/<asset>/<partition>.parquet`, `quarantine/<asset>/<partition>.parquet`,
`generated/<kind>/<partition>.jsonl`, `labeling/<batch>/`, `datasets/<version>/`, `models/<version>/`, `reports/`.
Every write goes to a temporary file beside the target and is renamed into place, so a reader never
sees half a file and re-running a partition replaces its output. Files are created 0600 and folders
0700 (`flywheel.core.permissions`), the SQLite database too.

The home is a local folder or an fsspec URL (`s3://bucket/prefix`, `gs://`, `az://`, `file://`); on object
storage paths are `upath.UPath`s with pathlib's API, credentials and endpoint come from the standard
environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...). Object stores have no rename, but a single
object is written whole or not at all: a file is uploaded with one PUT (multipart for large ones, visible
only once complete), so readers still never see half a file and re-running a partition replaces it; a
folder (a dataset or model version) is uploaded object by object and only read once a pointer written
after it names it (`datasets/LATEST`, `models/candidate.json`, the registry).
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
from upath import UPath

from flywheel.core.errors import InputError
from flywheel.core.permissions import private_dirs, touch_private

StoragePath = Path | UPath
"""A place under a home: a local `Path`, or a `UPath` on object storage."""

DEFAULT_HOME = ".flywheel"
DATABASE_URL_ENV = "FLYWHEEL_DATABASE_URL"
HOME_ENV = "FLYWHEEL_HOME"
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def is_remote(path: object) -> bool:
    """Whether `path` lives on object storage (a `UPath` that is not a local path)."""
    return isinstance(path, UPath) and not isinstance(path, Path)


def storage_path(location: str | os.PathLike[str]) -> StoragePath:
    """A stored location as a path: a `UPath` for an fsspec URL (kept as is when already one), a local
    `Path` otherwise (`file://` URLs included)."""
    if isinstance(location, (UPath, Path)):
        return location
    text = os.fspath(location)
    scheme = _URL_SCHEME.match(text)
    if scheme is None:
        return Path(text)
    protocol = scheme.group(1).lower()
    if protocol == "file":
        return Path(text[len("file://"):])
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as exc:
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}.get(protocol)
        hint = f" (pip install 'flywheel[{extra}]')" if extra else ""
        raise InputError(f"{text}: no filesystem for {protocol}:// is installed{hint}: {exc}") from exc
    return UPath(text.rstrip("/"))


class FlywheelHome:
    """The data root of one flywheel project: a local folder, or an fsspec URL (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        try:
            path = storage_path(root)
        except InputError as exc:
            raise InputError(f"FLYWHEEL_HOME={exc}") from exc
        self.remote = is_remote(path)
        self.root: StoragePath = path if self.remote else Path(path).expanduser().resolve()

    @classmethod
    def from_env(cls, explicit: str | os.PathLike[str] | None = None) -> FlywheelHome:
        """`explicit` when given, else `$FLYWHEEL_HOME`, else `./.flywheel`: the one place the home is resolved."""
        return cls(explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME)

    def __repr__(self) -> str:
        return f"FlywheelHome({str(self.root)!r})"

    def path(self, *parts: str) -> StoragePath:
        return self.root.joinpath(*parts)

    def relative(self, path: str | os.PathLike[str]) -> str:
        """`path` as stored in pointers, the registry and exports: relative to the home (POSIX) when it lies
        inside it, so a copied or moved home still works; absolute (or a URL) otherwise."""
        if self.remote:
            text, root = str(path), str(self.root).rstrip("/") + "/"
            return text[len(root):] if text.startswith(root) else text
        p = storage_path(path)
        if is_remote(p):
            return str(p)
        p = p if p.is_absolute() else self.root / p
        try:
            return p.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(p.resolve())

    def resolve(self, path: str | os.PathLike[str]) -> StoragePath:
        """A stored path (see `relative`) as a path here: URLs and absolute paths as they are, relative
        ones under this home."""
        p = storage_path(path)
        return p if is_remote(p) or p.is_absolute() else self.root.joinpath(*Path(p).parts)

    # --- well-known places -------------------------------------------------------------------
    def landing(self, stream: str, day: str | None = None) -> StoragePath:
        return self.path("landing", stream, day) if day else self.path("landing", stream)

    def warehouse(self, asset: str, partition: str | None = None) -> StoragePath:
        base = self.path("warehouse", asset)
        return base / f"{partition}.parquet" if partition else base

    def quarantine(self, asset: str, partition: str | None = None) -> StoragePath:
        base = self.path("quarantine", asset)
        return base / f"{partition}.parquet" if partition else base

    def generated(self, kind: str, partition: str | None = None) -> StoragePath:
        """`generated/<kind>/<partition>.jsonl`: a generation run's examples (kind: synthetic | distilled)."""
        base = self.path("generated", kind)
        return base / f"{partition}.jsonl" if partition else base

    def labeling(self, batch: str) -> StoragePath:
        return self.path("labeling", batch)

    def dataset(self, version: str) -> StoragePath:
        return self.path("datasets", version)

    def model(self, version: str) -> StoragePath:
        return self.path("models", version)

    def reports(self) -> StoragePath:
        return self.path("reports")

    def database_url(self, explicit: str | None = None) -> str:
        """`explicit` when given, else `FLYWHEEL_DATABASE_URL` when set, else a SQLite file in the home."""
        url = explicit or os.environ.get(DATABASE_URL_ENV)
        if url:
            return url
        if self.remote:
            raise InputError(f"FLYWHEEL_HOME={self.root}: a home on object storage keeps its decision store and "
                             f"model registry in a database server; set {DATABASE_URL_ENV} (e.g. postgresql://...)")
        private_dirs(self.root)
        return f"sqlite:///{self.path('flywheel.db')}"

    def warehouse_files(self, asset: str, partitions: Iterable[str]) -> list[StoragePath]:
        """The existing Parquet files of `asset` for the given partition keys."""
        files = [self.warehouse(asset, p) for p in partitions]
        return [f for f in files if f.exists()]


# --- atomic writes ---------------------------------------------------------------------------
@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a local temporary path (mode 0600) for `target`; on success it becomes `target` whole:
    renamed beside it on a local disk, uploaded as one object on object storage."""
    dest = storage_path(target)
    if is_remote(dest):
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            dest.fs.put_file(tmp, dest.path)
        finally:
            tmp_path.unlink(missing_ok=True)
        return
    dest = Path(dest)
    private_dirs(dest.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a local temporary directory; on success it replaces `target` whole.

    Locally an interrupted writer leaves only a hidden temp folder (mode 0700), never a half-written
    `target`. On object storage the folder's old objects are removed and its files uploaded one object
    each; readers reach such a folder only through a pointer written after it (module docstring)."""
    dest = storage_path(target)
    if is_remote(dest):
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp"))
        try:
            yield tmp
            upload_dir(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    dest = Path(dest)
    private_dirs(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def upload_dir(local: Path, dest: UPath) -> None:
    """Replace the object-storage folder `dest` with the files of the local folder `local`."""
    remove(dest)
    for file in sorted(f for f in local.rglob("*") if f.is_file()):
        dest.fs.put_file(str(file), f"{dest.path}/{file.relative_to(local).as_posix()}")


def remove(path: StoragePath) -> None:
    """Delete a file or a whole folder, local or on object storage (missing is fine)."""
    if is_remote(path):
        if path.exists():
            path.fs.rm(path.path, recursive=True)
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        Path(path).unlink(missing_ok=True)


def cache_dir() -> Path:
    """Where copies of objects live on this machine: `$FLYWHEEL_CACHE`, default `~/.cache/flywheel`."""
    return Path(os.environ.get("FLYWHEEL_CACHE") or Path.home() / ".cache" / "flywheel").expanduser()


def local_copy(source: StoragePath, cache: str | os.PathLike[str] | None = None) -> Path:
    """A local folder with the files of `source`: `source` itself when it is local, else a copy in the
    cache (`$FLYWHEEL_CACHE`, default `~/.cache/flywheel`) refreshed when the objects' sizes differ, for
    tools that need a local path (transformers and peft loading a model folder)."""
    if not is_remote(source):
        return Path(source)
    root = Path(cache) if cache else cache_dir()
    target = root / source.fs.protocol[0] / source.path
    fs = source.fs
    listing = {info["name"][len(source.path) + 1 :]: info.get("size") for info in fs.find(source.path, detail=True).values()}
    fresh = target.is_dir() and all((target / name).is_file() and (target / name).stat().st_size == size
                                    for name, size in listing.items())
    if not fresh:
        with atomic_dir(target) as tmp:
            for name in listing:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{source.path}/{name}", str(tmp / name))
    return target


def write_parquet(table: pa.Table, target: str | os.PathLike[str]) -> StoragePath:
    """Write a table atomically (a temp file renamed into place; one object on object storage)."""
    dest = storage_path(target)
    if is_remote(dest):
        with dest.fs.open(dest.path, "wb") as fh:  # the object appears only when the upload completes
            pq.write_table(table, fh, compression="zstd")
        return dest
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return dest


def read_parquet(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], schema: pa.Schema | None = None) -> pa.Table:
    """Read one or several Parquet files into one table (an empty table of `schema` when none exist)."""
    if isinstance(paths, (str, os.PathLike, UPath)):
        paths = [paths]
    existing = [p for p in map(storage_path, paths) if p.exists()]
    if not existing:
        if schema is None:
            return pa.table({})
        return schema.empty_table()
    tables = [read_table(p) for p in existing]
    if schema is not None:
        tables = [t.select(schema.names).cast(schema) for t in tables]
    return pa.concat_tables(tables, promote_options="default")


def read_table(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, local or on object storage (streamed, no local copy)."""
    p = storage_path(path)
    return pq.read_table(p.path, columns=columns, filesystem=p.fs) if is_remote(p) else pq.read_table(p, columns=columns)


def parquet_file(path: str | os.PathLike[str]) -> pq.ParquetFile:
    """A Parquet file's reader (metadata, schema, row groups), local or on object storage."""
    p = storage_path(path)
    return pq.ParquetFile(p.path, filesystem=p.fs) if is_remote(p) else pq.ParquetFile(p)


def write_text(text: str, target: str | os.PathLike[str]) -> StoragePath:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return storage_path(target)


def write_json(obj: Any, target: str | os.PathLike[str]) -> StoragePath:
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", target)


def write_jsonl(rows: Iterable[dict[str, Any]], target: str | os.PathLike[str]) -> StoragePath:
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return storage_path(target)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with storage_path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --- engines ---------------------------------------------------------------------------------
def duckdb_connection(threads: int | None = None, home: FlywheelHome | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for queries over the home's Parquet files; for a home on object
    storage its fsspec filesystem is registered, so `read_parquet('s3://...')` streams the objects."""
    con = duckdb.connect(":memory:")
    if home is not None and home.remote:
        con.register_filesystem(home.root.fs)
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
