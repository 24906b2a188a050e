"""MLflow importer on traces built with MLflow's own entities (mlflow-skinny: an OpenTelemetry span
wrapped by `create_mlflow_span`, `TraceInfo` with `Feedback` / `Expectation` assessments,
`Trace.to_json()`): the file `mlflow traces get` writes."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.capture.importers import import_file
from flywheel.core.storage import FlywheelHome
from tests.capture.importers.helpers import capture_day, landed, landed_feedback

T0_NS = 1772445600_000_000_000  # 2026-03-02T10:00:00Z


def mlflow_trace(i: int, *, human: bool = True) -> dict:
    from mlflow.entities import (
        AssessmentSource,
        Expectation,
        Feedback,
        Trace,
        TraceData,
        TraceInfo,
        TraceLocation,
        TraceState,
    )
    from mlflow.entities.span import create_mlflow_span
    from mlflow.tracing.utils import generate_trace_id_v3
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    start = T0_NS + i * 600_000_000_000  # 10 minutes apart: not resubmissions of each other
    otel = tracer.start_span("ChatCompletion", start_time=start)
    trace_id = generate_trace_id_v3(otel)
    span = create_mlflow_span(otel, trace_id, span_type="CHAT_MODEL")
    span.set_inputs({"model": "gpt-x", "messages": [{"role": "user", "content": f"question {i}"}]})
    span.set_outputs({"id": f"chatcmpl-{i}", "object": "chat.completion",
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {i}"}}]})
    otel.end(end_time=start + 700_000_000)
    source = AssessmentSource(source_type="HUMAN" if human else "LLM_JUDGE", source_id="reviewer")
    assessments = [Feedback(name="user_satisfaction", value=i % 2 == 0, source=source, trace_id=trace_id)]
    if i == 1:
        assessments.append(Expectation(name="expected_response", value="answer 1, as it should be", source=source,
                                       trace_id=trace_id))
    info = TraceInfo(trace_id=trace_id, trace_location=TraceLocation.from_experiment_id("0"),
                     request_time=start // 1_000_000, state=TraceState.OK, execution_duration=700,
                     trace_metadata={"mlflow.trace.session": "chat-7", "mlflow.trace.user": "alice"},
                     assessments=assessments)
    return json.loads(Trace(info=info, data=TraceData(spans=[span.to_immutable_span()])).to_json())


def test_mlflow_traces_with_assessments(home: FlywheelHome, tmp_path: Path) -> None:
    traces = [mlflow_trace(0), mlflow_trace(1), mlflow_trace(2, human=False)]
    path = tmp_path / "traces.json"
    path.write_text(json.dumps({"traces": traces}), encoding="utf-8")
    report = import_file(home, "mlflow", path)
    assert (report.interactions, report.feedback, report.skipped, report.quarantined) == (3, 3, 1, 0), report.summary()
    recs = sorted(landed(home), key=lambda r: r["ts"])
    assert [r["messages"][0]["content"] for r in recs] == ["question 0", "question 1", "question 2"]
    assert (recs[1]["output"], recs[1]["session_id"], recs[1]["user_id"], recs[1]["latency_ms"]) == (
        "answer 1", "chat-7", "alice", 700.0)
    assert recs[1]["interaction_id"].startswith(f"mlflow:{traces[1]['info']['trace_id']}:")
    kinds = {(iid.split(":")[1], kind, text) for iid, kind, text in landed_feedback(home)}
    t0, t1 = traces[0]["info"]["trace_id"], traces[1]["info"]["trace_id"]
    assert kinds == {(t0, "thumbs_up", None), (t1, "thumbs_down", None), (t1, "correction", "answer 1, as it should be")}
    assert import_file(home, "mlflow", path).already_landed == 6
    signals = capture_day(home, "2026-03-02")
    assert sorted(signals.values()) == ["correction", "none", "positive"]


def test_one_trace_per_file_and_a_broken_trace(home: FlywheelHome, tmp_path: Path) -> None:
    good = tmp_path / "one.json"
    good.write_text(json.dumps(mlflow_trace(4)), encoding="utf-8")
    assert import_file(home, "mlflow", good).interactions == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"info": {"trace_id": "tr-x"}, "data": {}}) + "\n", encoding="utf-8")
    report = import_file(home, "mlflow", bad)
    assert report.reasons == {"unknown_shape": 1} and report.conserved
