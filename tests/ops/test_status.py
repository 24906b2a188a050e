"""`flywheel status`: the data object from real files, decision store and registry, and its rendering."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from typer.testing import CliRunner

from flywheel.capture.pii import ner_available
from flywheel.cli import app
from flywheel.config import load_project
from flywheel.core.storage import FlywheelHome, write_json, write_parquet, write_text
from flywheel.labeling.store import ReviewStore
from flywheel.models import history, registry
from flywheel.ops.status import OFF_BY_DEFAULT, collect_status, next_cron_time, render_status, sparkline
from tests.capture.test_pii_ner import NER_MODELS
from tests.models.registry_rows import record

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_empty_home(home: FlywheelHome, project_dir: Path) -> None:
    st = collect_status(load_project(project_dir), home, home.database_url(), now=NOW)
    assert st.capture.last_day is None and st.batches == [] and st.dataset is None and st.champion is None
    assert st.history == [] and st.sparkline() == ""
    # Tuesday noon: the next step is Monday 07:00 labeling; daily_capture_schedule is off by default (the
    # landing sensor captures), so the 00:15 capture cron is never named as the next step
    assert [s.name for s in st.next_steps] == ["weekly labeling", "quarterly retrain"]
    assert st.next_steps[0].at == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    text = _render(st)
    assert "nothing captured yet" in text and "no champion yet" in text
    assert "no landing files yet" in text and "daily_capture_schedule is off by default" in text


def _summary(candidate: str, champion: str, cand: float, champ: float, slices: dict[str, tuple[float, float]]) -> dict:
    return {
        "candidate": candidate, "champion": champion, "eval_set_version": 1, "eval_set_hash": "h", "primary_metric": "chrf",
        "overall": {"chrf": {"candidate": cand, "champion": champ, "diff": cand - champ, "ci_low": 0.0, "ci_high": 0.1}},
        "slices": {s: {"metrics": {"chrf": {"candidate": c, "champion": h}}} for s, (c, h) in slices.items()},
    }


def test_full_status(home: FlywheelHome, project_dir: Path) -> None:
    db = home.database_url()
    day_rows = pa.table({"interaction_id": ["a", "b", "c"]})
    write_parquet(day_rows, home.warehouse("interactions", "2026-11-01"))
    write_parquet(day_rows.slice(0, 2), home.warehouse("interactions", "2026-11-02"))
    write_parquet(pa.table({"reason": ["bad_json"]}), home.quarantine("interactions", "2026-11-02"))
    store = ReviewStore(db)
    items = [{"item_id": f"i{i}", "kind": "negative", "input_key": f"k{i}", "interaction_id": f"x{i}",
              "messages": [{"role": "user", "content": "q"}], "output": "a"} for i in range(4)]
    store.register_batch("2026-10-26", items, kind="weekly")
    store.register_batch("2026-11-02", items, kind="weekly")
    store.record_decisions([store.validate_decision("2026-11-02", "i0", "ana", "pass", None, None)])
    write_parquet(pa.table({"x": [1]}), home.warehouse("reviewed_examples", "2026-10-26"))
    write_text("abc123def456\n", home.path("datasets", "LATEST"))
    write_json({"version": "abc123def456", "created": "2026-11-03T10:00:00+00:00",
                "counts": {"train": 230, "input": 300, "dropped": 70, "by_source": {"human": 40, "real": 70}},
                "rules": [{"name": "size_floor", "passed": True, "blocking": True, "message": "ok"},
                          {"name": "real_synthetic_ratio", "passed": False, "blocking": True, "message": "1:12"}]},
               home.dataset("abc123def456") / "manifest.json")
    for version, score in (("m1", 0.41), ("m2", 0.58), ("m3", 0.55)):
        registry.record_candidate(db, version, dataset_version="abc123def456", base_model="tiny", adapter_path=None,
                                  eval_set_hash="h", eval_set_version=1, scores={"overall": {"chrf": score}},
                                  gate_passed=version != "m3", gate_reasons=[])
        history.record_evaluation(db, _summary(version, "base", score, 0.4, {"clean": (score, 0.4)}),
                                  "promoted" if version != "m3" else "blocked")
        if version != "m3":
            registry.promote(db, version, by="test", reason="passed")

    st = collect_status(load_project(project_dir), home, db, now=NOW)
    assert (st.capture.last_day, st.capture.last_day_interactions, st.capture.last_day_quarantined,
            st.capture.days_captured) == ("2026-11-02", 2, 1, 2)
    assert [(b.batch_id, b.state, b.decided, b.items, b.turned_into_examples) for b in st.batches] == [
        ("2026-10-26", "open", 0, 4, True), ("2026-11-02", "open", 1, 4, False)]
    assert [b.batch_id for b in st.pending_batches] == ["2026-11-02"]
    assert st.dataset.version == "abc123def456" and st.dataset.counts["real"] == 70
    assert st.champion.version == "m2" and st.champion.score == 0.58 and st.champion.promoted_by == "test"
    assert [r["candidate_score"] for r in st.history] == [0.41, 0.58, 0.55]
    assert st.sparkline() == sparkline([0.41, 0.58, 0.55]) and st.sparkline()[1] == "█"
    text = _render(st)
    for expected in ("2026-11-02", "1/4", "abc123def456", "real_synthetic_ratio", "m2", "0.580", "blocked",
                     "weekly labeling"):
        assert expected in text, expected


def test_status_cli(home: FlywheelHome, project_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(home.root))
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["status", "--project", str(project_dir)])
    assert result.exit_code == 0, result.output
    assert "next scheduled step" in result.output and "doctor" in result.output


def test_next_cron_time() -> None:
    at = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert next_cron_time("0 7 * * 1", at) == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert next_cron_time("0 3 1 1,4,7,10 *", at) == datetime(2027, 1, 1, 3, 0, tzinfo=UTC)
    assert next_cron_time("*/15 * * * *", at) == datetime(2026, 11, 24, 12, 15, tzinfo=UTC)
    # 07:00 in New York (EST, UTC-5) is 12:00 UTC
    assert next_cron_time("0 7 * * 1", at, "America/New_York") == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _render(st) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(render_status(st))
    return buf.getvalue()


# --- the doctor ----------------------------------------------------------------------------------
def _landing(home: FlywheelHome, day: str) -> None:
    write_text('{"interaction_id": "a"}\n', home.landing("interactions", day) / "part-0001.jsonl")


def _items(n: int, kind: str = "sample") -> list[dict]:
    return [{"item_id": f"i{i}", "kind": kind, "input_key": "", "messages": [{"role": "user", "content": "q"}],
             "output": "a"} for i in range(n)]


def test_doctor_names_what_needs_a_person(home: FlywheelHome, project_dir: Path) -> None:
    db = home.database_url()
    now = datetime.now(UTC) + timedelta(days=3, hours=1)  # three days after the promotion below
    today = now.date()
    old, older = (today - timedelta(days=4)).isoformat(), (today - timedelta(days=5)).isoformat()
    for day in (older, old):
        _landing(home, day)
    write_parquet(pa.table({"interaction_id": ["a"]}), home.warehouse("interactions", older))  # `old` not captured
    store = ReviewStore(db)
    store.register_batch("2026-11-02", _items(4, "negative"), kind="weekly")
    store.register_batch("sample-ds1", _items(5), kind="sample")
    store.register_batch("conflicts-ds1", _items(2, "conflict"), kind="conflict")
    store.register_batch("admission-gen-abc", _items(3), kind="admission")
    store.register_batch("admission-old-def", _items(1), kind="admission")
    store.record_decisions([store.validate_decision("sample-ds1", "i0", "ana", "pass", None, None),
                            store.validate_decision("admission-old-def", "i0", "ana", "pass", None, None)])
    record(db, "m1", True, 0.5)
    registry.promote(db, "m1", by="ana", reason="first")
    record(db, "m2", False, 0.3, ["blocked: slice messy dropped 0.080 [-0.120, -0.040]", "chrf 0.30 vs 0.50"])
    history.record_evaluation(db, _summary("m2", "m1", 0.3, 0.5, {"messy": (0.2, 0.28)}), "blocked")

    st = collect_status(load_project(project_dir), home, db, now=now)
    assert (st.capture.last_landing_day, st.capture.landing_age_days, st.capture.stale) == (old, 4, True)
    assert st.capture.uncaptured_days == [old]
    assert {(b.kind, b.batch_id, b.decided, b.items) for b in st.open_batches} == {
        ("weekly", "2026-11-02", 0, 4), ("sample", "sample-ds1", 1, 5), ("conflict", "conflicts-ds1", 0, 2),
        ("admission", "admission-gen-abc", 0, 3)}  # admission-old-def is complete
    assert st.champion.version == "m1" and st.champion.age_days == 3
    assert (st.last_gate.candidate, st.last_gate.outcome) == ("m2", "blocked")
    assert st.last_gate.first_reason == "blocked: slice messy dropped 0.080 [-0.120, -0.040]"
    messages = [f.message for f in st.findings()]
    for expected in (f"stale: the last landing files are from {old}, 4 days old",
                     f"1 landing day(s) not captured ({old})",
                     "sample batch sample-ds1 open: 1/5 decided", "conflict batch conflicts-ds1 open: 0/2 decided",
                     "admission batch admission-gen-abc open: 0/3 decided", "weekly batch 2026-11-02 open: 0/4 decided",
                     "daily_capture_schedule is off by default", "m1, champion for 3 day(s)",
                     "last candidate m2: blocked (blocked: slice messy dropped 0.080"):
        assert any(expected in m for m in messages), (expected, messages)
    assert not any("admission-old-def" in m for m in messages)
    text = _render(st)
    for expected in ("doctor", "sample-ds1", "admission-gen-abc", "3 day(s) ago", "stale"):
        assert expected in text, expected


def test_fresh_capture_is_not_stale(home: FlywheelHome, project_dir: Path) -> None:
    now = datetime.now(UTC)
    _landing(home, (now.date() - timedelta(days=1)).isoformat())
    write_parquet(pa.table({"interaction_id": ["a"]}), home.warehouse("interactions", (now.date() - timedelta(days=1)).isoformat()))
    _landing(home, now.date().isoformat())  # today's files: captured tomorrow, not "uncaptured"
    st = collect_status(load_project(project_dir), home, home.database_url(), now=now)
    assert not st.capture.stale and st.capture.landing_age_days == 0 and st.capture.uncaptured_days == []
    assert any(f.level == "ok" and "today" in f.message for f in st.findings())


def test_off_by_default_matches_the_code_location() -> None:
    import dagster as dg

    from definitions import defs

    stopped = {s.name for s in defs.schedules if s.default_status == dg.DefaultScheduleStatus.STOPPED}
    stopped |= {s.name for s in defs.sensors if s.default_status == dg.DefaultSensorStatus.STOPPED}
    assert stopped == set(OFF_BY_DEFAULT)


def test_status_says_loudly_whether_ner_runs_on_training_bound_rows(home: FlywheelHome, project_dir: Path) -> None:
    project = load_project(project_dir)
    project.capture.pii.ner_models = ["no_such_pipeline"]
    st = collect_status(project, home, home.database_url(), now=NOW)
    assert st.pii_ner is None and "no_such_pipeline" in (st.pii_ner_missing or "")
    warn = [f for f in st.findings() if f.topic == "pii"]
    assert warn and warn[0].level == "warn" and "NER does not run" in warn[0].message
    assert "NER does not run" in _render(st)
    project.capture.pii.ner = False
    assert "capture.pii.ner is off" in (collect_status(project, home, home.database_url(), now=NOW).pii_ner_missing or "")
    model, _ = ner_available(NER_MODELS)
    if model is not None:  # a spaCy English pipeline is installed here
        project.capture.pii.ner, project.capture.pii.ner_models = True, NER_MODELS
        st = collect_status(project, home, home.database_url(), now=NOW)
        assert st.pii_ner == model and any(f.level == "ok" and f.topic == "pii" for f in st.findings())
