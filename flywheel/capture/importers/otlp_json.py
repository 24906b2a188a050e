"""OTLP JSON files of GenAI spans: one `ExportTraceServiceRequest` / `TracesData` JSON object, or JSON
Lines of them (what the OpenTelemetry Collector's file exporter writes). Spans map as the collector
maps them (`flywheel.capture.otlp`, the one home), so a span received by `flywheel collect` and then
imported from a file lands once. Each span is a row; its number is the line (JSONL) or 1, with the
span's position in the detail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from flywheel.capture.importers.common import SKIP, Row, as_row_error, error_row, interaction_row, json_rows
from flywheel.capture.otlp import interaction_of_span, is_genai, spans_from_json
from flywheel.capture.records import RowError

KIND = "otlp"


def rows(path: Path) -> Iterator[Row]:
    for number, obj in json_rows(path, list_keys=()):
        if isinstance(obj, RowError):
            yield error_row(number, "", obj)
            continue
        try:
            spans = list(spans_from_json(obj))
        except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
            yield error_row(number, obj, as_row_error(exc))
            continue
        for i, span in enumerate(spans):
            if isinstance(span, RowError):
                yield error_row(number, obj, RowError(span.reason, f"span {i}: {span.detail}"))
            elif not is_genai(span):
                yield Row(number, "", SKIP)
            else:
                raw = {"traceId": span.trace_id, "spanId": span.span_id, "name": span.name, "attributes": span.attributes}
                try:
                    yield interaction_row(number, raw, interaction_of_span(span))
                except Exception as exc:  # noqa: BLE001 - whatever a span provokes quarantines that span
                    exc = as_row_error(exc)
                    yield error_row(number, raw, RowError(exc.reason, f"span {i}: {exc.detail}"))
