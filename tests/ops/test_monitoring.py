"""The metric-drop rule over real signal files, the sensor cursor, and alert delivery to a real HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from flywheel.capture.signals import SIGNALS_SCHEMA
from flywheel.config import AutomationConfig
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.ops.monitoring import (
    FailureAlert,
    MetricCursor,
    decide_retrain,
    negative_rate,
    post_alert,
    run_key,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def write_signals(home: FlywheelHome, day: str, signals: list[str]) -> None:
    """One day's signal file: the given signals spread over the day."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    rows = [
        {
            "interaction_id": f"{day}-{i}",
            "ts": start + timedelta(minutes=10 * i),
            "session_id": f"s{i}",
            "signal": s,
            "weight": 1.0,
            "correction_text": "fixed" if s == "correction" else None,
            "evidence": "test",
        }
        for i, s in enumerate(signals)
    ]
    write_parquet(pa.Table.from_pylist(rows, schema=SIGNALS_SCHEMA), home.warehouse("interaction_signals", day))


def fill(home: FlywheelHome, first: datetime, days: int, negatives: int, total: int) -> None:
    for d in range(days):
        day = (first + timedelta(days=d)).date().isoformat()
        write_signals(home, day, ["negative"] * (negatives // 2) + ["correction"] * (negatives - negatives // 2)
                      + ["positive"] * (total - negatives))


def test_negative_rate_counts_negative_and_correction_in_window(home: FlywheelHome) -> None:
    fill(home, NOW - timedelta(days=7), 7, negatives=3, total=10)
    fill(home, NOW - timedelta(days=30), 2, negatives=10, total=10)  # outside the window
    fill(home, NOW, 1, negatives=10, total=10)  # today 00:00-01:30: inside; the window ends at noon
    window = negative_rate(home, NOW - timedelta(days=7), NOW)
    # the window starts at noon seven days ago: that day's rows (00:00-01:30) are outside it
    assert (window.interactions, window.negatives) == (6 * 10 + 10, 6 * 3 + 10)
    assert window.rate == pytest.approx(window.negatives / window.interactions)
    empty = negative_rate(home, NOW - timedelta(days=100), NOW - timedelta(days=90))
    assert (empty.interactions, empty.rate) == (0, None)


def test_threshold_triggers_with_reason_and_tags(home: FlywheelHome) -> None:
    fill(home, NOW - timedelta(days=8), 9, negatives=5, total=10)  # 50% > 35%
    decision = decide_retrain(home, AutomationConfig(), NOW, champion_promoted_at=None, last_triggered=None)
    assert decision.retrain
    assert "exceeds the threshold 35.0%" in decision.reason
    tags = decision.tags()
    assert tags["flywheel/trigger"] == "metric_drop" and float(tags["flywheel/negative_rate"]) == pytest.approx(0.5)


def test_within_bounds_and_too_few_interactions(home: FlywheelHome) -> None:
    fill(home, NOW - timedelta(days=8), 9, negatives=2, total=10)  # 20%
    ok = decide_retrain(home, AutomationConfig(), NOW, None, None)
    assert not ok.retrain and "within bounds" in ok.reason
    strict = AutomationConfig(metric_min_interactions=1000)
    few = decide_retrain(home, strict, NOW, None, None)
    assert not few.retrain and "need 1000" in few.reason


def test_rise_against_champion_first_weeks(home: FlywheelHome) -> None:
    promoted = NOW - timedelta(days=40)
    fill(home, promoted, 14, negatives=1, total=10)  # baseline 10%
    fill(home, NOW - timedelta(days=8), 9, negatives=3, total=10)  # now 30%: under the 35% threshold
    decision = decide_retrain(home, AutomationConfig(), NOW, champion_promoted_at=promoted, last_triggered=None)
    assert decision.retrain, decision.reason
    assert "rose from 10.0%" in decision.reason and "threshold" not in decision.reason
    assert decision.tags()["flywheel/baseline_rate"] == "0.1000"
    calm = decide_retrain(home, AutomationConfig(negative_rate_rise=0.25), NOW, promoted, None)
    assert not calm.retrain


def test_cooldown_blocks_a_second_trigger(home: FlywheelHome) -> None:
    fill(home, NOW - timedelta(days=8), 9, negatives=6, total=10)
    auto = AutomationConfig(retrain_cooldown_days=7)
    blocked = decide_retrain(home, auto, NOW, None, last_triggered=NOW - timedelta(days=3))
    assert not blocked.retrain and "cooldown until 2026-11-24" in blocked.reason
    again = decide_retrain(home, auto, NOW, None, last_triggered=NOW - timedelta(days=8))
    assert again.retrain


def test_cursor_round_trip_and_run_key() -> None:
    assert MetricCursor.parse(None).last_triggered_at() is None
    c = MetricCursor(last_triggered=NOW.isoformat(), last_reason="x")
    assert MetricCursor.parse(c.dump()).last_triggered_at() == NOW
    assert run_key(NOW) == "metric_drop:2026-11-20"


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real local HTTP server that records the JSON posted to it."""
    _Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Recorder.received
    finally:
        server.shutdown()
        server.server_close()


def test_post_alert_sends_json(webhook: tuple[str, list[dict]]) -> None:
    url, received = webhook
    alert = FailureAlert(job="daily_capture", run_id="abc", error="boom", partition="2026-11-02")
    assert post_alert(url, alert) == 204
    assert received[0]["path"] == "/hook" and received[0]["type"] == "application/json"
    body = received[0]["body"]
    assert body["job"] == "daily_capture" and body["partition"] == "2026-11-02"
    assert body["text"] == "flywheel: job 'daily_capture' (partition 2026-11-02) failed, run abc: boom"


def test_unreachable_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    assert post_alert("http://127.0.0.1:9/nothing", FailureAlert("j", "r", "e"), timeout_s=1) is None
    assert "unreachable" in caplog.text
