"""OTLP JSON importer: a file the OpenTelemetry Collector's file exporter writes (JSON Lines of
`TracesData`), mapped as the collector maps spans (a span collected and then imported lands once)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from flywheel.capture.collector import collector_app
from flywheel.capture.importers import import_file
from flywheel.core.storage import FlywheelHome
from tests.capture.importers.helpers import landed
from tests.capture.test_collector import AUTH, TOKEN, genai_span, payload
from tests.live_server import live_server


def test_otlp_file_imports_once_even_after_the_collector_got_it(home: FlywheelHome, tmp_path: Path) -> None:
    with live_server(collector_app(home, TOKEN)) as url:
        assert httpx.post(f"{url}/v1/traces", json=payload([genai_span(1)]), headers=AUTH).status_code == 200
    other = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "GET /", "startTimeUnixNano": "1",
             "endTimeUnixNano": "2", "attributes": []}
    lines = [payload([genai_span(1), genai_span(2)]), payload([genai_span(3, structured=True), other]),
             payload([genai_span(4, content=False)])]
    path = tmp_path / "otelcol-traces.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{\"resourceSpans\": 5}\n", encoding="utf-8")
    report = import_file(home, "otlp", path)
    assert (report.rows_read, report.interactions, report.already_landed, report.skipped, report.quarantined) == (
        6, 2, 1, 1, 2), report.summary()
    assert report.reasons == {"no_content": 1, "not_otlp": 1} and report.conserved
    assert sorted(r["interaction_id"] for r in landed(home)) == ["resp-1", "resp-2", "resp-3"]
    assert import_file(home, "otlp", path).interactions == 0
