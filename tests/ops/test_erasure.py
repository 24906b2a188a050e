"""Erasure (GDPR art. 17): one user's traffic captured through the real path, reviewed and curated into a
dataset version, then erased; every store is searched for their raw id, pseudonym, interaction ids and
texts, the other users' data stays, the models trained on it are named, and a second run is a no-op."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from assets.capture import interaction_signals, interactions
from assets.labeling import labeling_batch, reviewed_examples
from assets.resources import FlywheelResource
from flywheel.capture.pseudonyms import pseudonymizer
from flywheel.capture.sdk import CaptureWriter
from flywheel.cli import app
from flywheel.config import CaptureConfig, load_project
from flywheel.core.storage import FlywheelHome
from flywheel.curation.build import build_training_dataset
from flywheel.curation.versions import read_manifest
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore
from flywheel.models.registry import record_candidate
from flywheel.ops.erasure import ERASURE_LOG, erase_user

WEEK = "2026-01-05"
DAYS = ["2026-01-05", "2026-01-06"]
ZOE = "zoe-4471"  # the user who asks to be erased
ZOE_TEXTS = ["how do marmalade unicorns sync notebooks", "marmalade unicorns notebook sync failed twice",
             "zoe-only correction about quokka folders", "quokka folder export to the tablet",
             "quokka folder export to the tablet again please"]
OTHERS = {"ann-1002": ["how can I rename a tag", "where is the trash folder"],
          "ben-2203": ["share a notebook with my team", "change the default font size"]}


def _log_traffic(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        def ask(user: str, text: str, ts: str, session: str) -> str:
            return w.log_interaction([{"role": "user", "content": text}], f"answer: {text}", session_id=session,
                                     user_id=user, model_version="m1", latency_ms=20, confidence=0.9, ts=ts)

        z1 = ask(ZOE, ZOE_TEXTS[0], f"{DAYS[0]}T09:00:00Z", "zoe-s1")
        ask(ZOE, ZOE_TEXTS[1], f"{DAYS[0]}T09:00:40Z", "zoe-s1")
        w.log_feedback(z1, "correction", text=ZOE_TEXTS[2], ts=f"{DAYS[0]}T09:02:00Z")
        z3 = ask(ZOE, ZOE_TEXTS[3], f"{DAYS[0]}T23:59:30Z", "zoe-s2")
        ask(ZOE, ZOE_TEXTS[4], f"{DAYS[1]}T00:00:20Z", "zoe-s2")  # a resubmission across midnight
        w.log_feedback(z3, "thumbs_down", ts=f"{DAYS[1]}T00:01:00Z")  # late feedback, next day's folder
        for n, (user, texts) in enumerate(OTHERS.items()):
            for d, (day, text) in enumerate(zip(DAYS, texts, strict=True)):
                iid = ask(user, text, f"{day}T1{n}:0{d}:00Z", f"{user}-s{d}")
                w.log_feedback(iid, "thumbs_up", ts=f"{day}T1{n}:0{d}:30Z")
    bad = {"interaction_id": "zoe-broken-1", "ts": f"{DAYS[0]}T11:00:00Z", "session_id": "zoe-s3",
           "user_id": ZOE, "messages": [{"role": "user", "content": "zoe broken quokka request"}], "latency_ms": 1}
    (home.landing("interactions", DAYS[0]) / "handwritten.jsonl").write_text(json.dumps(bad) + "\n")  # no output


def _build_world(home: FlywheelHome, project_dir: Path) -> tuple[str, str]:
    """Capture, a reviewed weekly batch, a dataset version and a model trained on it: (dataset, db url)."""
    _log_traffic(home)
    resource = FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))
    res = {"flywheel": resource}
    for day in DAYS:
        assert dg.materialize([interactions, interaction_signals], partition_key=day, resources=res).success
    assert dg.materialize([labeling_batch], partition_key=WEEK, resources=res).success
    db = resource.db_url()
    store = ReviewStore(db)
    for item in store.items(WEEK):  # fixed answers: curation keeps them (passed ones count as self-generated)
        zoe = ZOE_TEXTS[0] in item["input_text"]
        text = "a fixed answer for the marmalade unicorns" if zoe else f"a fixed answer to: {item['input_text']}"
        record_decision(store, WEEK, item["item_id"], "rev", "fix", text=text)
    assert dg.materialize([labeling_batch, reviewed_examples], partition_key=WEEK, resources=res,
                          selection=[reviewed_examples]).success
    version = build_training_dataset(load_project(project_dir), home, db).version.version
    record_candidate(db, "model-on-zoe", dataset_version=version, base_model="tiny", adapter_path="models/x",
                     eval_set_hash="e", eval_set_version=1, scores={}, gate_passed=True, gate_reasons=[])
    (home.model("adapter-2") / "manifest.json").parent.mkdir(parents=True)
    (home.model("adapter-2") / "manifest.json").write_text(json.dumps({"dataset_version": version}))
    return version, db


def _readable(path: Path) -> str:
    """A file's content as text: Parquet decoded (its pages are compressed), anything else as bytes."""
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
    return path.read_bytes().decode("utf-8", "backslashreplace")


def _where(home: FlywheelHome, needles: list[str]) -> dict[str, list[str]]:
    """{needle: the files under the home holding it} (the SQLite database and its WAL included)."""
    files = [p for p in home.root.rglob("*") if p.is_file() and p.suffix != ".png"]
    texts = {str(p.relative_to(home.root)): _readable(p) for p in files}
    return {n: sorted(f for f, t in texts.items() if n in t) for n in needles}


def _store(rel: str) -> str:
    """The store of a file: `warehouse/<table>` (also quarantine, landing), else its first folder or name."""
    parts = rel.removesuffix("-wal").split("/")
    return "/".join(parts[:2]) if parts[0] in ("warehouse", "quarantine", "landing") else parts[0]


def _zoe_interaction_ids(home: FlywheelHome) -> list[str]:
    rows = [json.loads(line) for p in home.path("landing", "interactions").rglob("*.jsonl")
            for line in p.read_text().splitlines()]
    return [r["interaction_id"] for r in rows if r["user_id"] == ZOE]


def _fingerprint(home: FlywheelHome) -> dict[str, str]:
    return {str(p.relative_to(home.root)): hashlib.sha256(_readable(p).encode()).hexdigest()
            for p in home.root.rglob("*") if p.is_file() and p.name != ERASURE_LOG and "flywheel.db" not in p.name}


def test_erasure_removes_one_user_from_every_store(home: FlywheelHome, project_dir: Path) -> None:
    version, db = _build_world(home, project_dir)
    config = CaptureConfig()
    pseudonym = pseudonymizer(config).pseudonym("user_id", ZOE)
    zoe_ids = _zoe_interaction_ids(home)
    needles = [ZOE, pseudonym, *ZOE_TEXTS, "zoe broken quokka request", *zoe_ids]
    before = _where(home, needles)
    # the search can see each store: Zoe is everywhere before
    seen = {_store(f) for files in before.values() for f in files}
    assert {"landing/interactions", "landing/feedback", "warehouse/interactions", "warehouse/interaction_signals",
            "warehouse/labeling_batch", "warehouse/reviewed_examples", "quarantine/interactions", "labeling",
            "datasets", "flywheel.db"} <= seen, seen
    assert before[ZOE_TEXTS[0]] and any(f.startswith("datasets/") for f in before[ZOE_TEXTS[0]])
    assert not before[ZOE][0].startswith("warehouse")  # the raw id is in landing only (pseudonymised at capture)

    report = erase_user(home, db, config, ZOE)

    after = _where(home, needles)
    assert after == {n: [] for n in needles}, {n: f for n, f in after.items() if f}
    others = _where(home, [u for u in OTHERS] + [t for texts in OTHERS.values() for t in texts])
    for text in (t for texts in OTHERS.values() for t in texts):  # the other users' data stays everywhere
        assert {"warehouse", "labeling", "datasets", "landing", "flywheel.db"} <= {
            _store(f).split("/")[0] for f in others[text]}, text
    assert report.rows["landing/interactions"] == 5 and report.rows["landing/feedback"] == 2
    assert report.rows["warehouse/interactions"] == 4 and report.rows["quarantine/interactions"] == 1
    assert report.rows["review/items"] >= 3 and report.rows["review/decisions"] >= 3
    assert report.dataset_versions == [version]
    assert [m["version"] for m in report.models] == ["adapter-2", "model-on-zoe"]
    manifest = read_manifest(home, version)
    assert manifest["erasures"][0]["erasure_id"] == report.erasure_id
    assert manifest["erasures"][0]["rows_removed"]["train.parquet"] >= 3
    assert "Amended on" in (home.dataset(version) / "card.md").read_text()
    log = [json.loads(line) for line in (home.reports() / ERASURE_LOG).read_text().splitlines()]
    assert log[0]["rows_total"] == report.total > 0 and log[0]["models_to_retrain"] == report.models
    # the other users' reviewed rows are still in the store and the dataset
    store = ReviewStore(db)
    assert all(ZOE_TEXTS[0] not in it["input_text"] for it in store.items(WEEK)) and len(store.items(WEEK)) == 4
    assert pq.read_table(home.dataset(version) / "train.parquet").num_rows == manifest["counts"]["train"] - 3

    state = _fingerprint(home)
    again = erase_user(home, db, config, ZOE)
    assert again.total == 0 and again.files == {} and again.models == [] and again.dataset_versions == []
    assert _fingerprint(home) == state
    assert len((home.reports() / ERASURE_LOG).read_text().splitlines()) == 2


def test_erasure_finds_ids_pseudonymised_under_an_old_key(
    home: FlywheelHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CaptureWriter(home) as w:
        w.log_interaction([{"role": "user", "content": "before the rotation"}], "a", session_id="s", user_id="yan",
                          model_version="m", latency_ms=1, ts=f"{DAYS[0]}T08:00:00Z")
        w.log_interaction([{"role": "user", "content": "kept: another user"}], "a", session_id="t", user_id="xia",
                          model_version="m", latency_ms=1, ts=f"{DAYS[0]}T08:01:00Z")
    from flywheel.capture.ingestion import ingest_interactions

    ingest_interactions(home, DAYS[0], CaptureConfig())
    for path in home.path("landing").rglob("*.jsonl"):
        path.unlink()  # past retention: only the warehouse holds the day now
    old = "test-only-pseudonym-key-not-a-secret"
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", "the-new-key-after-rotation")
    db = f"sqlite:///{home.root / 'flywheel.db'}"
    assert erase_user(home, db, CaptureConfig(), "yan").total == 0  # the new key alone cannot find yan
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_OLD_KEYS", old)
    report = erase_user(home, db, CaptureConfig(), "yan")
    assert report.rows == {"warehouse/interactions": 1}
    assert pq.read_table(home.warehouse("interactions", DAYS[0]))["input_text"].to_pylist() == ["kept: another user"]


def test_the_cli_erases_and_says_when_there_is_nothing_left(tmp_path: Path, home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        w.log_interaction([{"role": "user", "content": "cli erasure"}], "a", session_id="s", user_id="walt",
                          model_version="m", latency_ms=1, ts=f"{DAYS[0]}T08:00:00Z")
    runner = CliRunner()
    args = ["erase", "--user", "walt", "--home", str(home.root), "--project", str(tmp_path)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "landing/interactions" in first.output and "1 row" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "nothing to erase" in second.output
    assert "walt" not in (home.reports() / ERASURE_LOG).read_text()
    empty = runner.invoke(app, ["erase", "--user", " ", "--home", str(home.root), "--project", str(tmp_path)])
    assert empty.exit_code == 2 and "empty" in empty.output
    engine = sa.create_engine(f"sqlite:///{home.root / 'flywheel.db'}")
    with engine.connect() as conn:  # the review store exists (and is empty): nothing else was created
        assert conn.execute(sa.text("SELECT count(*) FROM review_items")).scalar_one() == 0
    engine.dispose()


def test_erasure_on_postgresql(home: FlywheelHome, pg_url: str) -> None:
    with CaptureWriter(home) as w:
        mine = w.log_interaction([{"role": "user", "content": "pg question"}], "a", session_id="s", user_id="pia",
                                 model_version="m", latency_ms=1, ts=f"{DAYS[0]}T08:00:00Z")
        other = w.log_interaction([{"role": "user", "content": "pg other"}], "a", session_id="t", user_id="rob",
                                  model_version="m", latency_ms=1, ts=f"{DAYS[0]}T08:01:00Z")
    store = ReviewStore(pg_url)
    items = [{"item_id": i, "kind": "control", "interaction_id": i, "input_key": i, "input_text": t}
             for i, t in ((mine, "pg question"), (other, "pg other"))]
    store.register_batch(WEEK, items, kind="weekly")
    record_decision(store, WEEK, mine, "rev", "fix", text="pia's fixed answer")
    report = erase_user(home, pg_url, CaptureConfig(), "pia")
    assert report.rows["review/items"] == 1 and report.rows["review/decisions"] == 1
    assert store.item_ids(WEEK) == [other] and store.decisions(WEEK) == []
