"""Langfuse importer on rows written by the `langfuse` SDK's own API models (`langfuse.api`:
ObservationV2, Score_Correction / Score_Boolean / Score_Numeric; `.json()` writes the public API's
camelCase) and on a trace in the `GET /api/public/traces/{id}` shape (observations and scores nested)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from langfuse.api import ObservationV2, Score_Boolean, Score_Correction, Score_Numeric

from flywheel.capture.importers import import_file
from flywheel.core.storage import FlywheelHome
from tests.capture.importers.helpers import capture_day, landed, landed_feedback

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def generation(i: int, *, trace: str, output: object = None) -> ObservationV2:
    return ObservationV2(
        id=f"obs-{i}", trace_id=trace, type="GENERATION", name="chat", start_time=T0 + timedelta(minutes=i),
        end_time=T0 + timedelta(minutes=i, milliseconds=800), project_id="p", model="gpt-x", session_id="sess-1",
        user_id="user-1", input=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": f"q{i}"}],
        output=output if output is not None else {"role": "assistant", "content": f"a{i}"},
        usage_details={"input": 12, "output": 3}, environment="default", level="DEFAULT")


def score(cls: type, sid: str, when: datetime, **kw: object) -> dict:
    common = {"id": sid, "name": kw.pop("name", "user-feedback"), "source": kw.pop("source", "API"), "timestamp": when,
              "created_at": when, "updated_at": when, "environment": "default"}
    return json.loads(cls(**common, **kw).json())


def test_generations_scores_and_corrections(home: FlywheelHome, tmp_path: Path) -> None:
    later = T0 + timedelta(days=6)  # annotated a week later: filed on the interaction's day
    rows = [json.loads(generation(i, trace=f"tr-{i}").json()) for i in range(4)]
    rows += [
        score(Score_Correction, "s1", later, trace_id="tr-0", observation_id="obs-0", name="output",
              source="ANNOTATION", value=0, string_value="a0, corrected", data_type="CORRECTION"),
        score(Score_Boolean, "s2", T0 + timedelta(hours=1), trace_id="tr-1", value=0, string_value="False",
              data_type="BOOLEAN"),
        score(Score_Numeric, "s3", T0 + timedelta(hours=1), trace_id="tr-2", observation_id="obs-2", value=1,
              data_type="NUMERIC"),
        score(Score_Numeric, "s4", T0, trace_id="tr-3", observation_id="obs-3", value=0.2, data_type="NUMERIC",
              source="EVAL", name="llm-judge"),  # an evaluator's score: not user feedback
        score(Score_Boolean, "s5", T0, trace_id="tr-unknown", value=1, string_value="True", data_type="BOOLEAN"),
    ]
    path = tmp_path / "langfuse-export.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")

    report = import_file(home, "langfuse", path)
    assert (report.interactions, report.feedback, report.skipped, report.quarantined) == (4, 3, 1, 1), report.summary()
    assert report.reasons == {"unknown_interaction": 1} and report.conserved
    recs = {r["interaction_id"]: r for r in landed(home)}
    rec = recs["langfuse:obs-1"]
    assert rec["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "q1"}]
    assert (rec["output"], rec["session_id"], rec["user_id"], rec["latency_ms"]) == ("a1", "sess-1", "user-1", 800.0)
    assert landed_feedback(home) == [("langfuse:obs-0", "correction", "a0, corrected"),
                                     ("langfuse:obs-1", "thumbs_down", None), ("langfuse:obs-2", "thumbs_up", None)]
    assert import_file(home, "langfuse", path).already_landed == 7
    signals = capture_day(home, "2026-03-02")
    assert signals == {"langfuse:obs-0": "correction", "langfuse:obs-1": "negative",
                       "langfuse:obs-2": "positive", "langfuse:obs-3": "none"}


def test_trace_with_nested_observations_and_scores(home: FlywheelHome, tmp_path: Path) -> None:
    trace = {"id": "tr-9", "timestamp": T0.isoformat(), "name": "qa", "sessionId": "s-9", "userId": "u-9",
             "observations": [json.loads(generation(9, trace="tr-9", output="plain text answer").json()),
                              {"id": "span-1", "traceId": "tr-9", "type": "SPAN", "startTime": T0.isoformat()}],
             "scores": [score(Score_Boolean, "s9", T0 + timedelta(minutes=20), trace_id="tr-9", value=1,
                              string_value="True", data_type="BOOLEAN")]}
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace), encoding="utf-8")
    report = import_file(home, "langfuse", path)
    assert (report.interactions, report.feedback, report.skipped) == (1, 1, 1) and report.conserved
    [rec] = landed(home)
    assert rec["output"] == "plain text answer" and rec["interaction_id"] == "langfuse:obs-9"
    assert landed_feedback(home) == [("langfuse:obs-9", "thumbs_up", None)]
