"""`flywheel status`: the data object from real files, decision store and registry, and its rendering."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.config import load_project
from flywheel.core.storage import FlywheelHome, write_json, write_parquet, write_text
from flywheel.labeling.store import ReviewStore
from flywheel.models import history, registry
from flywheel.ops.status import collect_status, next_cron_time, render_status, sparkline

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_empty_home(home: FlywheelHome, project_dir: Path) -> None:
    st = collect_status(load_project(project_dir), home, home.database_url(), now=NOW)
    assert st.capture.last_day is None and st.batches == [] and st.dataset is None and st.champion is None
    assert st.history == [] and st.sparkline() == ""
    # Tuesday noon: the next step is the Wednesday 00:15 capture; Monday 07:00 labeling is later
    assert [s.name for s in st.next_steps] == ["daily capture", "weekly labeling", "quarterly retrain"]
    assert st.next_steps[0].at == datetime(2026, 11, 25, 0, 15, tzinfo=UTC)
    text = _render(st)
    assert "nothing captured yet" in text and "no champion yet" in text


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
    for expected in ("2026-11-02", "1/4", "abc123def456", "real_synthetic_ratio", "m2", "0.580", "blocked", "daily capture"):
        assert expected in text, expected


def test_status_cli(home: FlywheelHome, project_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(home.root))
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["status", "--project", str(project_dir)])
    assert result.exit_code == 0, result.output
    assert "next scheduled step" in result.output


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
