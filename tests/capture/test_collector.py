"""The OTLP/HTTP collector on a real uvicorn server: the OpenTelemetry SDK's own OTLP exporter sends
GenAI spans (protobuf, gzip), JSON payloads in the OTLP/JSON encoding, feedback events; what lands is
ingested by capture unchanged."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from flywheel.capture.collector import collector_app
from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import landing_files
from flywheel.capture.otlp import SEMCONV_VERSION
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.config import CaptureConfig, CollectorConfig
from flywheel.core.storage import FlywheelHome
from tests.live_server import live_server

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW_NS = int(datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp() * 1e9)


def _s(value: str) -> dict:
    return {"stringValue": value}


def genai_span(i: int, *, structured: bool = False, content: bool = True) -> dict:
    """One OTLP/JSON span of a chat call (semconv 1.37 attributes)."""
    inp = [{"role": "user", "parts": [{"type": "text", "content": f"question {i}"}]}]
    out = [{"role": "assistant", "parts": [{"type": "text", "content": f"answer {i}"}], "finish_reason": "stop"}]
    attrs = [{"key": "gen_ai.operation.name", "value": _s("chat")},
             {"key": "gen_ai.request.model", "value": _s("m-1")},
             {"key": "gen_ai.response.id", "value": _s(f"resp-{i}")},
             {"key": "gen_ai.conversation.id", "value": _s("conv-1")},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}]
    if content and structured:  # the same structure as OTLP array / kvlist values
        def part(p: dict) -> dict:
            return {"kvlistValue": {"values": [{"key": k, "value": _s(v)} for k, v in p.items()]}}

        def msg(m: dict) -> dict:
            values = [{"key": "role", "value": _s(m["role"])},
                      {"key": "parts", "value": {"arrayValue": {"values": [part(p) for p in m["parts"]]}}}]
            return {"kvlistValue": {"values": values}}

        attrs += [{"key": "gen_ai.input.messages", "value": {"arrayValue": {"values": [msg(m) for m in inp]}}},
                  {"key": "gen_ai.output.messages", "value": {"arrayValue": {"values": [msg(m) for m in out]}}}]
    elif content:
        attrs += [{"key": "gen_ai.input.messages", "value": _s(json.dumps(inp))},
                  {"key": "gen_ai.output.messages", "value": _s(json.dumps(out))}]
    return {"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": "chat m-1",
            "startTimeUnixNano": str(NOW_NS), "endTimeUnixNano": str(NOW_NS + 250_000_000), "attributes": attrs}


def payload(spans: list[dict]) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": _s("chat-api")}]},
                               "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}


def landed(home: FlywheelHome, stream: str, day: str = "2026-03-02") -> list[dict]:
    return [json.loads(line) for f in landing_files(home, stream, day) for line in f.read_text().splitlines()]


@pytest.fixture
def small_config() -> CollectorConfig:
    return CollectorConfig(max_body_bytes=64 * 1024, max_inflight=4)


def test_otel_sdk_exporter_delivers_genai_spans_that_capture_ingests(home: FlywheelHome) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with live_server(collector_app(home, TOKEN)) as url:
        provider = TracerProvider(resource=Resource.create({"service.name": "chat-api"}))
        exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=AUTH, compression=Compression.Gzip)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("app")
        with tracer.start_as_current_span("chat tiny") as span:
            span.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "tiny", "gen_ai.response.model": "tiny-v3",
                "gen_ai.response.id": "chatcmpl-abc", "gen_ai.conversation.id": "conv-9", "user.id": "u-7",
                "gen_ai.usage.input_tokens": 11, "gen_ai.usage.output_tokens": 4,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                                       "parts": [{"type": "text", "content": "4"}]}]),
            })
        with tracer.start_as_current_span("GET /health"):  # not a model call: skipped
            pass
        provider.shutdown()
    day = datetime.now(UTC).date().isoformat()
    [rec] = landed(home, INTERACTIONS, day)
    assert rec["interaction_id"] == "chatcmpl-abc" and rec["session_id"] == "conv-9" and rec["user_id"] == "u-7"
    assert rec["model_version"] == "tiny-v3" and rec["output"] == "4"
    assert rec["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert rec["metadata"]["semconv"] == SEMCONV_VERSION and rec["metadata"]["input_tokens"] == 11
    assert rec["metadata"]["service"] == "chat-api" and rec["latency_ms"] >= 0
    report = ingest_interactions(home, day, CaptureConfig(), workers=1)
    assert (report.rows_read, report.rows_accepted) == (1, 1)


def test_json_spans_partial_success_quarantines_the_bad_span(home: FlywheelHome) -> None:
    other = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "db query", "startTimeUnixNano": str(NOW_NS),
             "endTimeUnixNano": str(NOW_NS + 1), "attributes": [{"key": "db.system", "value": _s("postgresql")}]}
    spans = [genai_span(1), genai_span(2, structured=True), genai_span(3, content=False), other]
    with live_server(collector_app(home, TOKEN)) as url:
        r = httpx.post(f"{url}/v1/traces", json=payload(spans), headers=AUTH)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "span 2: no_content" in partial["errorMessage"]
    recs = {r["interaction_id"]: r for r in landed(home, INTERACTIONS)}
    assert set(recs) == {"resp-1", "resp-2"}
    assert recs["resp-2"]["messages"] == [{"role": "user", "content": "question 2"}]
    assert recs["resp-2"]["output"] == "answer 2" and recs["resp-1"]["latency_ms"] == 250.0
    [qfile] = list(home.quarantine("collector").rglob("*.parquet"))
    [row] = pq.read_table(qfile).to_pylist()
    assert row["reason"] == "no_content" and row["line"] == 2 and "gen_ai.input.messages" in row["detail"]
    assert "resp-3" in row["raw"]


def test_refusals_name_their_reason(home: FlywheelHome, small_config: CollectorConfig) -> None:
    with live_server(collector_app(home, TOKEN, small_config)) as url:
        good = payload([genai_span(1)])
        assert httpx.post(f"{url}/v1/traces", json=good).status_code == 401
        assert httpx.post(f"{url}/v1/traces", json=good, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        r = httpx.post(f"{url}/v1/traces", content=b"{}", headers={**AUTH, "content-type": "text/plain"})
        assert r.status_code == 415
        r = httpx.post(f"{url}/v1/traces", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_json")
        r = httpx.post(f"{url}/v1/traces", json={"resourceSpans": "x"}, headers=AUTH)
        assert (r.status_code, r.json()["error"]) == (400, "not_otlp")
        r = httpx.post(f"{url}/v1/traces", content=b"\x0a\xff\xff", headers={**AUTH, "content-type": "application/x-protobuf"})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_protobuf")
        r = httpx.post(f"{url}/v1/traces", json=payload([genai_span(5, content=False)]), headers=AUTH)
        assert (r.status_code, r.json()["error"]) == (400, "no_usable_spans")
        big = payload([genai_span(i) for i in range(400)])
        r = httpx.post(f"{url}/v1/traces", json=big, headers=AUTH)
        assert (r.status_code, r.json()["error"]) == (413, "too_large")
        bomb = gzip.compress(b" " * (10 << 20))  # 10 MiB of spaces in ~10 KiB
        r = httpx.post(f"{url}/v1/traces", content=bomb,
                       headers={**AUTH, "content-type": "application/json", "content-encoding": "gzip"})
        assert r.status_code == 413 and "decompressed" in r.json()["message"]
    assert landed(home, INTERACTIONS) == []


def test_feedback_is_all_or_nothing_and_lands_for_capture(home: FlywheelHome) -> None:
    with live_server(collector_app(home, TOKEN)) as url:
        events = [{"response_id": "resp-1", "kind": "thumbs_down", "ts": "2026-03-02T12:01:00Z"},
                  {"interaction_id": "resp-1", "kind": "smile", "ts": "2026-03-02T12:01:00Z"}]
        r = httpx.post(f"{url}/v1/feedback", json={"events": events}, headers=AUTH)
        assert r.status_code == 400 and "events[1].kind" in r.json()["message"]
        r = httpx.post(f"{url}/v1/feedback", json={"interaction_id": "r", "kind": "correction"}, headers=AUTH)
        assert r.status_code == 400 and "corrected text" in r.json()["message"]
        events[1] = {"interaction_id": "resp-1", "kind": "correction", "text": "better", "ts": "2026-03-02T12:02:00Z"}
        r = httpx.post(f"{url}/v1/feedback", json=events, headers=AUTH)
        assert r.json() == {"accepted": 2}
    assert [(e["interaction_id"], e["kind"], e["text"]) for e in landed(home, FEEDBACK)] == [
        ("resp-1", "thumbs_down", None), ("resp-1", "correction", "better")]


def test_acknowledged_records_are_on_disk_before_publication(home: FlywheelHome) -> None:
    writer = CaptureWriter(home, max_age_s=3600)
    with live_server(collector_app(home, TOKEN, writer=writer)) as url:
        r = httpx.post(f"{url}/v1/traces", json=payload([genai_span(7)]), headers=AUTH)
        assert r.status_code == 200
        folder = home.landing(INTERACTIONS, "2026-03-02")
        [tmp] = list(folder.glob(".*.tmp"))  # not yet published, but the acknowledged record is written
        assert json.loads(tmp.read_text())["interaction_id"] == "resp-7"


class BlockingWriter(CaptureWriter):
    """A writer whose durable sync waits for `release` (a slow disk), to fill the collector's slots."""

    def __init__(self, home: FlywheelHome) -> None:
        super().__init__(home)
        self.release = threading.Event()
        self.entered = threading.Event()

    def sync(self) -> None:
        self.entered.set()
        self.release.wait(10)
        super().sync()


def test_requests_over_max_inflight_get_503_with_retry_after(home: FlywheelHome) -> None:
    writer = BlockingWriter(home)
    cfg = CollectorConfig(max_inflight=1, retry_after_s=3)
    with live_server(collector_app(home, TOKEN, cfg, writer=writer)) as url:
        first: dict = {}
        sender = threading.Thread(target=lambda: first.update(r=httpx.post(
            f"{url}/v1/traces", json=payload([genai_span(1)]), headers=AUTH, timeout=20)))
        sender.start()
        assert writer.entered.wait(10)  # the first request holds the only slot
        r = httpx.post(f"{url}/v1/feedback", json={"interaction_id": "x", "kind": "copy"}, headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"] == "3"
        writer.release.set()
        sender.join(20)
    assert first["r"].status_code == 200
    assert [r["interaction_id"] for r in landed(home, INTERACTIONS)] == ["resp-1"]


def test_a_failed_landing_write_is_not_acknowledged(home: FlywheelHome, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    writer = CaptureWriter(blocker)  # the landing folder cannot be created under a file
    with live_server(collector_app(home, TOKEN, writer=writer)) as url:
        r = httpx.post(f"{url}/v1/traces", json=payload([genai_span(1)]), headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (503, "landing_failed")
