"""Erasure, landing retention, `flywheel status` and the live metric with FLYWHEEL_HOME on object storage
(a real S3 server, moto's): the data is written by the real capture, labeling and curation code into a
local home and uploaded object by object, the operation runs on the `s3://` home, and the objects are
downloaded again to check what it left."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from flywheel.capture.landing import landing_days, landing_files
from flywheel.capture.pseudonyms import pseudonymizer
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.retention import apply_retention, past_retention
from flywheel.capture.signals import SIGNALS
from flywheel.cli import app
from flywheel.config import AutomationConfig, CaptureConfig, load_project
from flywheel.core.storage import FlywheelHome, read_table, write_parquet, write_text
from flywheel.curation.versions import read_manifest
from flywheel.labeling.store import ReviewStore
from flywheel.ops.erasure import ERASURE_LOG, erase_user
from flywheel.ops.monitoring import decide_retrain, negative_rate
from flywheel.ops.status import collect_status
from tests.capture.test_retention import _capture, _log_days
from tests.ops.test_erasure import (
    OTHERS,
    WEEK,
    ZOE,
    ZOE_TEXTS,
    _build_world,
    _store,
    _where,
    _zoe_interaction_ids,
)
from tests.ops.test_monitoring import fill


def _upload(local: FlywheelHome, remote: FlywheelHome, under: str = "") -> int:
    """Copy the files of the local home (those under `under`) to the home on object storage, one object each."""
    fs, count = remote.root.fs, 0
    base = local.root / under if under else local.root
    for file in sorted(p for p in base.rglob("*") if p.is_file()):
        fs.put_file(str(file), f"{remote.root.path}/{file.relative_to(local.root).as_posix()}")
        count += 1
    return count


def _download(remote: FlywheelHome, into: Path) -> FlywheelHome:
    """The objects of the home on object storage, as a local home in `into` (to search them like files)."""
    fs, root = remote.root.fs, remote.root.path
    fs.invalidate_cache()
    for name in fs.find(root):
        target = into / name[len(root) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(target))
    return FlywheelHome(into)


def _keys(remote: FlywheelHome) -> list[str]:
    remote.root.fs.invalidate_cache()
    root = remote.root.path
    return sorted(name[len(root) + 1 :] for name in remote.root.fs.find(root))


# --- erasure -----------------------------------------------------------------------------------------
def test_erasure_on_object_storage(home: FlywheelHome, s3_home: FlywheelHome, project_dir: Path, tmp_path: Path) -> None:
    version, db = _build_world(home, project_dir)  # the database is s3_home's PostgreSQL one
    assert db.startswith("postgresql") and not home.path("flywheel.db").exists()
    config = CaptureConfig()
    pseudonym = pseudonymizer(config).pseudonym("user_id", ZOE)
    zoe_ids = _zoe_interaction_ids(home)
    needles = [ZOE, pseudonym, *ZOE_TEXTS, "zoe broken quokka request", *zoe_ids]
    # a live writer's landing file naming Zoe: counted as pending, left alone
    pending = home.landing(INTERACTIONS, "2026-01-06") / ".live-writer.jsonl.tmp"
    pending.write_text(json.dumps({"interaction_id": "zoe-live-1", "user_id": ZOE, "ts": "2026-01-06T12:00:00Z"}) + "\n")
    before_local = _where(home, needles)
    _upload(home, s3_home)
    before = _where(_download(s3_home, tmp_path / "before"), needles)
    assert before == before_local
    seen = {_store(f) for files in before.values() for f in files}
    assert {"landing/interactions", "landing/feedback", "warehouse/interactions", "warehouse/interaction_signals",
            "warehouse/labeling_batch", "warehouse/reviewed_examples", "quarantine/interactions", "labeling",
            "datasets"} <= seen, seen

    report = erase_user(s3_home, db, config, ZOE)

    after_home = _download(s3_home, tmp_path / "after")
    after = _where(after_home, needles)
    leftover = {n: [f for f in files if not f.endswith(".live-writer.jsonl.tmp")] for n, files in after.items()}
    assert leftover == {n: [] for n in needles}, {n: f for n, f in leftover.items() if f}
    assert report.pending_files == ["landing/interactions/2026-01-06/.live-writer.jsonl.tmp"]
    others = _where(after_home, [t for texts in OTHERS.values() for t in texts])
    for text, files in others.items():  # the other users' data stays everywhere
        assert {"warehouse", "labeling", "datasets", "landing"} <= {_store(f).split("/")[0] for f in files}, text
    assert report.rows["landing/interactions"] == 5 and report.rows["landing/feedback"] == 2
    assert report.rows["warehouse/interactions"] == 4 and report.rows["quarantine/interactions"] == 1
    assert report.rows["review/items"] >= 3 and report.rows["review/decisions"] >= 3
    assert all(not f.startswith("s3:") for f in report.files) and "warehouse/interactions/2026-01-05.parquet" in report.files
    assert report.dataset_versions == [version]
    assert [m["version"] for m in report.models] == ["adapter-2", "model-on-zoe"]
    manifest = read_manifest(s3_home, version)
    assert manifest["erasures"][0]["erasure_id"] == report.erasure_id
    assert "Amended on" in (s3_home.dataset(version) / "card.md").read_text()
    train = read_table(s3_home.dataset(version) / "train.parquet")
    assert train.num_rows == manifest["counts"]["train"] - manifest["erasures"][0]["rows_removed"]["train.parquet"]
    assert all(ZOE_TEXTS[0] not in it["input_text"] for it in ReviewStore(db).items(WEEK))
    assert not any(k.endswith(".tmp") and "live-writer" not in k for k in _keys(s3_home))  # no temp object left

    state = {k: (s3_home.root / k).read_bytes() for k in _keys(s3_home) if not k.endswith(ERASURE_LOG)}
    again = erase_user(s3_home, db, config, ZOE)
    assert again.total == 0 and again.files == {} and again.dataset_versions == []
    assert {k: (s3_home.root / k).read_bytes() for k in _keys(s3_home) if not k.endswith(ERASURE_LOG)} == state
    log = [json.loads(line) for line in (s3_home.reports() / ERASURE_LOG).read_text().splitlines()]
    assert [r["erasure_id"] for r in log] == [report.erasure_id, again.erasure_id]  # appended, not replaced
    assert log[0]["rows_total"] == report.total and ZOE not in (s3_home.reports() / ERASURE_LOG).read_text()


# --- retention ---------------------------------------------------------------------------------------
DAYS = ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"]
TODAY = date(2026, 1, 17)  # with 10 days of retention, days before 2026-01-07 are past it


def _rewrite(remote: FlywheelHome, asset: str, day: str) -> None:
    """A capture of `day` written again (its output objects are newer than the landing files)."""
    path = remote.warehouse(asset, day)
    write_parquet(read_table(path), path)


def test_retention_on_object_storage(home: FlywheelHome, s3_home: FlywheelHome) -> None:
    config = CaptureConfig(retention_days=10)
    _log_days(home, DAYS)
    for day in ("2026-01-05", "2026-01-06"):
        _capture(home, day, config)
    _upload(home, s3_home, "landing")
    # nothing captured on the store yet: every day past retention is kept, with the reason
    report = apply_retention(s3_home, config, TODAY)
    assert report.deleted_days == [] and set(report.kept) == {"2026-01-05", "2026-01-06"}
    assert "not captured yet" in report.kept["2026-01-05"]

    time.sleep(1.1)  # object times are to the second: the captures' outputs are newer than the landing files
    _upload(home, s3_home, "warehouse")
    time.sleep(1.1)
    late = s3_home.landing(FEEDBACK, "2026-01-06") / "late.jsonl"  # lands after its day's capture
    write_text('{"interaction_id": "x", "ts": "2026-01-06T13:00:00Z", "kind": "copy"}\n', late)
    assert set(past_retention(s3_home, config, TODAY)) == {"2026-01-05", "2026-01-06"}
    report = apply_retention(s3_home, config, TODAY)
    assert report.deleted_days == ["2026-01-05"] and report.deleted_files == 2 and report.deleted_bytes > 0
    assert "changed after the capture" in report.kept["2026-01-06"]
    assert "2026-01-05" not in landing_days(s3_home, INTERACTIONS) + landing_days(s3_home, FEEDBACK)
    assert s3_home.warehouse(INTERACTIONS, "2026-01-05").exists()  # only landing files go
    assert not any(k.startswith("landing/") and "2026-01-05" in k for k in _keys(s3_home))

    time.sleep(1.1)
    for asset, day in ((INTERACTIONS, "2026-01-06"), (SIGNALS, "2026-01-06"), (SIGNALS, "2026-01-05")):
        _rewrite(s3_home, asset, day)  # the day is captured again (and the day before, whose signals read it)
    report = apply_retention(s3_home, config, TODAY)
    assert report.deleted_days == ["2026-01-06"] and report.deleted_files == 3 and report.kept == {}
    assert landing_files(s3_home, INTERACTIONS, "2026-01-07") and landing_files(s3_home, FEEDBACK, "2026-01-08")
    assert apply_retention(s3_home, config, TODAY).deleted_days == []


# --- status and the live metric ----------------------------------------------------------------------
def test_status_on_object_storage(home: FlywheelHome, s3_home: FlywheelHome, project_dir: Path, pg_url: str) -> None:
    config = CaptureConfig()
    _log_days(home, DAYS[:3])
    for day in DAYS[:2]:
        _capture(home, day, config)
    _upload(home, s3_home)
    write_parquet(pa.table({"reason": ["bad_json", "bad_json"]}), s3_home.quarantine(INTERACTIONS, DAYS[1]))
    write_text("abc123def456\n", s3_home.path("datasets", "LATEST"))
    write_text(json.dumps({"version": "abc123def456", "created": "2026-01-12T10:00:00+00:00",
                           "counts": {"train": 230, "input": 300, "dropped": 70}, "rules": []}),
               s3_home.dataset("abc123def456") / "manifest.json")
    now = datetime(2026, 1, 9, 12, 0, tzinfo=UTC)
    st = collect_status(load_project(project_dir), s3_home, pg_url, now=now)
    assert st.home.startswith("s3://")
    assert (st.capture.last_day, st.capture.last_day_interactions, st.capture.last_day_quarantined,
            st.capture.days_captured) == (DAYS[1], 1, 2, 2)
    assert st.capture.last_landing_day == DAYS[2] and st.capture.uncaptured_days == [DAYS[2]]
    assert st.dataset.version == "abc123def456" and st.dataset.counts["train"] == 230
    assert any(f.topic == "capture" and "not captured" in f.message for f in st.findings())


def test_negative_rate_on_object_storage(s3_home: FlywheelHome) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    fill(s3_home, now - timedelta(days=7), 7, negatives=3, total=10)
    window = negative_rate(s3_home, now - timedelta(days=7), now)
    assert (window.interactions, window.negatives) == (60, 18)
    decision = decide_retrain(s3_home, AutomationConfig(negative_rate_threshold=0.2, metric_min_interactions=10),
                              now, None, None)
    assert decision.retrain and "exceeds the threshold" in decision.reason


def test_the_cli_erases_and_shows_status_on_object_storage(
    home: FlywheelHome, s3_home: FlywheelHome, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log_days(home, DAYS[:1])
    _upload(home, s3_home)
    monkeypatch.setenv("FLYWHEEL_HOME", str(s3_home.root))  # FLYWHEEL_DATABASE_URL: s3_home's PostgreSQL
    runner = CliRunner()
    status = runner.invoke(app, ["status", "--project", str(project_dir)])
    assert status.exit_code == 0, status.output
    assert "doctor" in status.output and DAYS[0] in status.output
    erased = runner.invoke(app, ["erase", "--user", "u", "--project", str(project_dir)])
    assert erased.exit_code == 0, erased.output
    assert "landing/interactions" in erased.output and "s3://" in erased.output
    assert landing_days(s3_home, INTERACTIONS) == [] and landing_days(s3_home, FEEDBACK) == []
    assert len((s3_home.reports() / ERASURE_LOG).read_text().splitlines()) == 1
