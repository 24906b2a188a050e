"""OpenInference / Phoenix importer on spans built with the attribute names of the
`openinference-semantic-conventions` package, in Phoenix's REST shape (flat dotted attributes,
`GET /v1/projects/{p}/spans`) and its `get_spans_dataframe()` records shape (nested message lists),
plus span annotations in the `GET /v1/projects/{p}/span_annotations` shape."""

from __future__ import annotations

import json
from pathlib import Path

from openinference.semconv.trace import (
    MessageAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)

from flywheel.capture.importers import import_file
from flywheel.core.storage import FlywheelHome
from tests.capture.importers.helpers import capture_day, landed, landed_feedback

IN, OUT = SpanAttributes.LLM_INPUT_MESSAGES, SpanAttributes.LLM_OUTPUT_MESSAGES
ROLE, CONTENT = MessageAttributes.MESSAGE_ROLE, MessageAttributes.MESSAGE_CONTENT


def rest_span(i: int, kind: str = OpenInferenceSpanKindValues.LLM.value) -> dict:
    attributes = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: kind, SpanAttributes.LLM_MODEL_NAME: "gpt-x",
        SpanAttributes.SESSION_ID: "sess-3", SpanAttributes.USER_ID: "user-3",
        SpanAttributes.LLM_TOKEN_COUNT_PROMPT: 10, SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: 2,
        f"{IN}.0.{ROLE}": "system", f"{IN}.0.{CONTENT}": "Be kind.",
        f"{IN}.1.{ROLE}": "user", f"{IN}.1.{CONTENT}": f"question {i}",
        f"{OUT}.0.{ROLE}": "assistant", f"{OUT}.0.{CONTENT}": f"answer {i}",
    }
    return {"id": f"U3BhbjoxMjM{i}", "name": "ChatCompletion", "span_kind": kind, "parent_id": None,
            "context": {"trace_id": f"{i:032x}", "span_id": f"{i:016x}"},
            "start_time": f"2026-03-02T10:0{i}:00.000000+00:00", "end_time": f"2026-03-02T10:0{i}:01.500000+00:00",
            "status_code": "OK", "status_message": "", "attributes": attributes, "events": []}


def dataframe_record(i: int) -> dict:
    """A `get_spans_dataframe()` row written with `to_json(orient="records")`."""
    return {"context.span_id": f"{i:016x}", "context.trace_id": f"{i:032x}", "span_kind": "LLM", "name": "llm",
            "start_time": "2026-03-02T11:00:00Z", "end_time": "2026-03-02T11:00:02Z",
            f"attributes.{SpanAttributes.LLM_MODEL_NAME}": "local-7b",
            f"attributes.{IN}": [{ROLE: "user", CONTENT: "hello"}],
            f"attributes.{OUT}": [{ROLE: "assistant", CONTENT: "hi there"}]}


def annotation(span: int, name: str, kind: str = "HUMAN", **result: object) -> dict:
    return {"id": f"ann-{span}-{name}", "span_id": f"{span:016x}", "name": name, "annotator_kind": kind,
            "result": {"label": None, "score": None, "explanation": None, **result}, "metadata": {},
            "identifier": "", "source": "APP", "created_at": "2026-03-05T08:00:00+00:00",
            "updated_at": "2026-03-05T08:00:00+00:00"}


def test_spans_and_human_annotations(home: FlywheelHome, tmp_path: Path) -> None:
    rows = [rest_span(1), rest_span(2), rest_span(3), rest_span(4, kind="RETRIEVER"), dataframe_record(5),
            annotation(1, "correction", explanation="answer 1, fixed"),
            annotation(2, "thumbs", label="thumbs_down"),
            annotation(3, "helpfulness", score=1.0),
            annotation(3, "relevance", kind="LLM", label="irrelevant"),  # an evaluation, not user feedback
            annotation(9, "correction", label="")]  # no corrected text: quarantined
    path = tmp_path / "phoenix-spans.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    report = import_file(home, "openinference", path)
    assert (report.interactions, report.feedback, report.skipped, report.quarantined) == (4, 3, 2, 1), report.summary()
    assert report.reasons == {"missing_field": 1}
    recs = {r["interaction_id"]: r for r in landed(home)}
    rec = recs[f"openinference:{1:016x}"]
    assert rec["messages"] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "question 1"}]
    assert (rec["output"], rec["session_id"], rec["user_id"], rec["latency_ms"]) == ("answer 1", "sess-3", "user-3", 1500.0)
    assert recs[f"openinference:{5:016x}"]["output"] == "hi there"
    assert landed_feedback(home) == [(f"openinference:{1:016x}", "correction", "answer 1, fixed"),
                                     (f"openinference:{2:016x}", "thumbs_down", None),
                                     (f"openinference:{3:016x}", "thumbs_up", None)]
    again = import_file(home, "openinference", path)
    assert (again.interactions, again.feedback, again.already_landed) == (0, 0, 7)
    signals = capture_day(home, "2026-03-02")
    assert signals[f"openinference:{1:016x}"] == "correction" and signals[f"openinference:{2:016x}"] == "negative"
