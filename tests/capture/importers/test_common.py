"""Every importer on arbitrary JSON: each row is landed, skipped or quarantined with a reason, never a
crash (hypothesis); the feedback mapping of scores and labels."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.capture.importers import KINDS, import_file
from flywheel.capture.importers.common import feedback_kind
from flywheel.core.storage import FlywheelHome

keys = st.sampled_from(["id", "type", "traceId", "dataType", "value", "stringValue", "startTime", "endTime", "input",
                        "output", "messages", "request", "response", "choices", "created", "object", "info", "data",
                        "spans", "span_kind", "context", "attributes", "annotator_kind", "result", "span_id",
                        "resourceSpans", "observationId", "timestamp"])
scalars = (st.none() | st.booleans() | st.integers(-5, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["GENERATION", "LLM", "HUMAN", "CORRECTION", "BOOLEAN", "2026-03-02T10:00:00Z",
                              "chat.completion", "user", "assistant", "x"]))
objects = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=6),
                       max_leaves=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), rows=st.lists(objects, min_size=1, max_size=6), jsonl=st.booleans())
def test_any_rows_are_accounted_for(kind: str, rows: list, jsonl: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) if jsonl else json.dumps(rows), encoding="utf-8")
        report = import_file(FlywheelHome(Path(tmp) / "home"), kind, path)
        assert report.conserved, report.summary()
        assert all(reason for reason in report.reasons)


@pytest.mark.parametrize(("value", "kind"), [
    (True, "thumbs_up"), (False, "thumbs_down"), (1, "thumbs_up"), (0, "thumbs_down"), (-1, "thumbs_down"),
    (0.7, None), ("Thumbs Up", "thumbs_up"), ("incorrect", "thumbs_down"), ("👎", "thumbs_down"), ("maybe", None),
    (None, None)])
def test_feedback_kind(value: object, kind: str | None) -> None:
    assert feedback_kind(value) == kind
