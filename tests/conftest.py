"""Shared pytest fixtures: a data home, a starter project with a written rubric, a PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from assets.resources import FlywheelResource
from flywheel.core.storage import FlywheelHome
from flywheel.project import init_project
from tests.shared_data import DATASETS

# torch on a shared 2-core machine: busy-waiting OpenMP threads slow training ~10x
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# tests never see the caller's project, home, database, Dagster instance or MLflow server (`make` exports
# the demo's): every test names its own, and the code location loads with the defaults (partitions from
# 2026-01-01)
for _name in ("FLYWHEEL_PROJECT", "FLYWHEEL_HOME", "FLYWHEEL_DATABASE_URL", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
    os.environ.pop(_name, None)
# capture pseudonymises user and session ids with this test-only key (a test of a missing key unsets it)
os.environ["FLYWHEEL_PSEUDONYM_KEY"] = "test-only-pseudonym-key-not-a-secret"
os.environ.pop("FLYWHEEL_PSEUDONYM_OLD_KEYS", None)

PG_SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

EDITED_RUBRIC = """# Quality rubric (test project)

A perfect answer is correct, complete, and follows the requested format exactly.
A bad answer is wrong, invents facts, ignores the format, or refuses a reasonable request.
"""


@pytest.fixture
def home(tmp_path: Path) -> FlywheelHome:
    """An empty FLYWHEEL_HOME in the test's temp folder."""
    return FlywheelHome(tmp_path / "home")


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A starter project (`flywheel init`) whose rubric.md has been written, so it is not the template."""
    directory = tmp_path / "project"
    init_project(directory)
    (directory / "rubric.md").write_text(EDITED_RUBRIC, encoding="utf-8")
    return directory


@pytest.fixture
def shared_datasets() -> Path:
    """`../shared/datasets`: real ChatML, ShareGPT and Alpaca files (skips when the folder is missing)."""
    if not DATASETS.is_dir():
        pytest.skip(f"{DATASETS} is missing (clone the repository beside ../shared)")
    return DATASETS


@pytest.fixture
def flywheel_resource(project_dir: Path, home: FlywheelHome) -> FlywheelResource:
    """The code location's resource on the test's project and home (SQLite in the home)."""
    return FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))


def _server_engine() -> sa.Engine:
    return sa.create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, uniquely named PostgreSQL database, dropped afterwards.

    Skips the test when the local server (127.0.0.1:5432, user postgres, trust auth) is unreachable.
    """
    name = f"flywheel_test_{uuid.uuid4().hex[:12]}"
    engine = _server_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL unreachable at 127.0.0.1:5432: {exc.orig}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        from flywheel.core.storage import _ENGINES

        for url in [u for u in _ENGINES if u.endswith(f"/{name}")]:
            _ENGINES.pop(url).dispose()
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible server (moto's standalone server) on 127.0.0.1 for the session; the standard
    AWS environment points at it, so flywheel and any subprocess it starts reach it without code changes."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[dev]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[s3]')")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env["AWS_ENDPOINT_URL"]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture
def s3_home(s3_server: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> FlywheelHome:
    """An empty FLYWHEEL_HOME in a fresh bucket of the local S3 server, its database a fresh PostgreSQL one
    (a home on object storage keeps the decision store and registry in a database server)."""
    import boto3

    bucket = f"flywheel-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", pg_url)
    return FlywheelHome(f"s3://{bucket}/home")
