"""GenAI span mapping (`flywheel.capture.otlp`): property tests of the decoders and the mapping."""

from __future__ import annotations

import base64
import json

from google.protobuf.json_format import ParseDict
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flywheel.capture.otlp import interaction_of_span, is_genai, spans_from_json, spans_from_protobuf
from flywheel.capture.records import RowError

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer"])
messages = st.lists(st.fixed_dictionaries({"role": roles, "parts": st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "content": texts}), min_size=1, max_size=3)}), min_size=1, max_size=4)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                           max_leaves=10)


def _any(value: object) -> dict:
    """A Python value as an OTLP/JSON AnyValue."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": _any(v)} for k, v in value.items()]}}
    raise TypeError(value)


def request(attributes: dict, structured: bool) -> dict:
    attrs = [{"key": k, "value": _any(v) if structured or not isinstance(v, list) else {"stringValue": json.dumps(v)}}
             for k, v in attributes.items()]
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "chat",
            "startTimeUnixNano": "1772445600000000000", "endTimeUnixNano": "1772445600500000000", "attributes": attrs}
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}


@settings(max_examples=60, deadline=None)
@given(inp=messages, out=messages)
def test_json_string_structured_and_protobuf_encodings_map_alike(inp: list, out: list) -> None:
    out = [{**out[0], "role": "assistant"}]
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": inp, "gen_ai.output.messages": out}
    records = []
    for structured in (False, True):
        [span] = spans_from_json(request(attrs, structured))
        records.append(interaction_of_span(span))
    as_proto_json = request(attrs, True)  # protobuf's JSON mapping has base64 ids where OTLP/JSON has hex
    span_json = as_proto_json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for key in ("traceId", "spanId"):
        span_json[key] = base64.b64encode(bytes.fromhex(span_json[key])).decode()
    proto = ParseDict(as_proto_json, ExportTraceServiceRequest())
    [span] = spans_from_protobuf(proto.SerializeToString())
    records.append(interaction_of_span(span))
    assert records[0] == records[1] == records[2]
    rec = records[0]
    assert len(rec["messages"]) == len(inp) and rec["output"] == "\n".join(p["content"] for p in out[0]["parts"])
    assert rec["interaction_id"] == "otlp:0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331" and rec["latency_ms"] == 500.0


@settings(max_examples=150, deadline=None)
@given(attrs=st.dictionaries(st.sampled_from(["gen_ai.input.messages", "gen_ai.output.messages",
                                              "gen_ai.system_instructions", "gen_ai.operation.name",
                                              "gen_ai.response.id", "user.id"]), json_values, max_size=6),
       as_text=st.booleans())
def test_any_attributes_map_or_raise_a_row_error(attrs: dict, as_text: bool) -> None:
    """Whatever a span carries, the mapping gives a record or a RowError with a reason, never a crash."""
    attrs = {k: json.dumps(v) if as_text and isinstance(v, (list, dict)) else v for k, v in attrs.items()}
    for item in spans_from_json(request(attrs, structured=True)):
        if isinstance(item, RowError) or not is_genai(item):
            continue
        try:
            rec = interaction_of_span(item)
        except RowError as exc:
            assert exc.reason
        else:
            assert isinstance(rec["output"], str) and all(isinstance(m["content"], str) for m in rec["messages"])


@settings(max_examples=100, deadline=None)
@given(payload=json_values)
def test_any_json_payload_decodes_or_raises_a_row_error(payload: object) -> None:
    try:
        for item in spans_from_json(payload):
            assert isinstance(item, RowError) or item.trace_id is not None
    except RowError as exc:
        assert exc.reason == "not_otlp"


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_decode_or_raise_invalid_protobuf(body: bytes) -> None:
    try:
        list(spans_from_protobuf(body))
    except RowError as exc:
        assert exc.reason == "invalid_protobuf"
