"""Owner-only permissions: what capture, the storage layer and the SQLite database create under the home is
0600 (files) and 0700 (folders), whatever the usual umask would give."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.sdk import CaptureWriter
from flywheel.config import CaptureConfig
from flywheel.core.permissions import private_dirs
from flywheel.core.storage import FlywheelHome, atomic_dir, write_json
from flywheel.labeling.store import ReviewStore
from flywheel.ops.erasure import erase_user

DAY = "2026-01-05"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common umask (022: world-readable by default), so the test sees what flywheel sets itself."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_everything_capture_writes_is_owner_only(home: FlywheelHome) -> None:
    assert not home.root.exists()
    with CaptureWriter(home) as w:
        iid = w.log_interaction([{"role": "user", "content": "hi"}], "hello", session_id="s", user_id="u",
                                model_version="m", latency_ms=1, ts=f"{DAY}T10:00:00Z")
        w.log_feedback(iid, "copy", ts=f"{DAY}T10:01:00Z")
        w.log_interaction([{"role": "user", "content": "hey"}], "hello", session_id="t", user_id="v",
                          model_version="m", latency_ms=1, ts=f"{DAY}T10:02:00Z")
    ingest_interactions(home, DAY, CaptureConfig())
    store = ReviewStore(home.database_url())
    store.register_batch("b", [], kind="weekly")
    write_json({"a": 1}, home.reports() / "x.json")
    with atomic_dir(home.model("v1")) as tmp:
        (tmp / "weights.bin").write_bytes(b"0")
    erase_user(home, home.database_url(), CaptureConfig(), "u")  # rewrites the landing file, appends its log

    files = [p for p in home.root.rglob("*") if p.is_file()]
    folders = [home.root, *(p for p in home.root.rglob("*") if p.is_dir())]
    names = {p.name for p in files}
    assert {"flywheel.db", f"{DAY}.parquet", "erasures.jsonl", "x.json"} <= names
    assert any(p.suffix == ".jsonl" and "landing" in p.parts for p in files)
    assert {str(p.relative_to(home.root)): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {
        "models/v1/weights.bin": oct(0o644)}  # written by the trainer's own code inside a private folder
    assert {str(p): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}


def test_existing_folders_are_left_as_they_are(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    made = private_dirs(shared / "a" / "b")
    assert _mode(shared) == 0o755 and _mode(shared / "a") == _mode(made) == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        private_dirs(tmp_path / "file")
