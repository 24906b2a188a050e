"""FLYWHEEL_HOME as a URL: file:// is a local path; s3:// (any fsspec URL whose filesystem is installed) is
object storage, tested against a real S3 server on 127.0.0.1 (moto's standalone server); a URL without
an installed filesystem is refused clearly instead of a local folder named `s3:` appearing."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.errors import InputError
from flywheel.core.storage import (
    FlywheelHome,
    atomic_dir,
    duckdb_connection,
    local_copy,
    read_jsonl,
    read_parquet,
    write_json,
    write_jsonl,
    write_parquet,
)


def test_file_url_is_a_local_path(tmp_path: Path) -> None:
    assert FlywheelHome(f"file://{tmp_path}/home").root == tmp_path / "home"


@pytest.mark.parametrize("url", ["nosuchfs://bucket/home", "gopher://container/home"])
def test_urls_without_a_filesystem_are_refused_clearly(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"no filesystem for"):
        FlywheelHome(url)
    monkeypatch.setenv("FLYWHEEL_HOME", url)
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code != 0 and "no filesystem for" in " ".join(result.output.split())
    assert os.listdir(tmp_path) == []  # nothing created locally


def test_an_object_store_home_without_a_database_server_says_so(s3_home: FlywheelHome, monkeypatch) -> None:
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL")
    with pytest.raises(InputError, match="FLYWHEEL_DATABASE_URL"):
        s3_home.database_url()


def test_files_tables_and_folders_on_s3(s3_home: FlywheelHome, tmp_path: Path) -> None:
    assert s3_home.remote and str(s3_home.root).startswith("s3://")
    table = pa.table({"id": ["a", "b"], "n": [1, 2]})
    write_parquet(table, s3_home.warehouse("interactions", "2026-01-01"))
    write_parquet(table, s3_home.warehouse("interactions", "2026-01-01"))  # re-running a partition replaces it
    write_parquet(pa.table({"id": ["c"], "n": [3]}), s3_home.warehouse("interactions", "2026-01-02"))
    files = s3_home.warehouse_files("interactions", ["2026-01-01", "2026-01-02", "2026-01-03"])
    assert [f.name for f in files] == ["2026-01-01.parquet", "2026-01-02.parquet"]
    assert read_parquet(files).num_rows == 3
    con = duckdb_connection(home=s3_home)  # DuckDB streams the objects through the home's filesystem
    listed = ", ".join(f"'{f}'" for f in files)
    assert con.execute(f"SELECT sum(n) FROM read_parquet([{listed}])").fetchone() == (6,)

    write_jsonl([{"a": 1}, {"a": "é"}], s3_home.labeling("b1") / "items.jsonl")
    assert read_jsonl(s3_home.labeling("b1") / "items.jsonl") == [{"a": 1}, {"a": "é"}]
    write_json({"version": "v1"}, s3_home.path("models", "candidate.json"))
    assert s3_home.path("models", "candidate.json").read_text().strip().startswith("{")

    with atomic_dir(s3_home.model("m1")) as tmp:
        (tmp / "adapter").mkdir()
        (tmp / "adapter" / "weights.bin").write_bytes(b"\0" * 10)
        (tmp / "manifest.json").write_text("{}")
    with atomic_dir(s3_home.model("m1")) as tmp:  # a rewrite replaces the folder whole: no stale objects
        (tmp / "manifest.json").write_text('{"v": 2}')
    assert sorted(p.name for p in s3_home.model("m1").iterdir()) == ["manifest.json"]

    cached = local_copy(s3_home.model("m1"), cache=tmp_path / "cache")
    assert cached.is_dir() and (cached / "manifest.json").read_text() == '{"v": 2}'
    assert local_copy(s3_home.model("m1"), cache=tmp_path / "cache") == cached  # fresh: not fetched again


def test_stored_paths_are_relative_to_an_object_store_home(s3_home: FlywheelHome) -> None:
    model = s3_home.model("m1")
    assert s3_home.relative(model) == "models/m1"
    assert str(s3_home.resolve("models/m1")) == str(model)
    assert str(s3_home.resolve("s3://other/x")) == "s3://other/x"
