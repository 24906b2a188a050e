"""OTLP traces of GenAI calls -> capture records: one home for the collector and the OTLP importer.

Follows the OpenTelemetry GenAI semantic conventions **v1.37.0** (`SEMCONV_VERSION`), the release that
put the content on the span as `gen_ai.input.messages`, `gen_ai.output.messages` and
`gen_ai.system_instructions` (JSON strings, or the same structure as OTLP array/kvlist values):

- input message: `{"role": "system|user|assistant|tool", "parts": [{"type": "text", "content": ...},
  {"type": "tool_call", ...}, {"type": "tool_call_response", "response": ...}]}`;
- output message: the same with `finish_reason`; the first assistant message's text is the output.

A span is a GenAI call when it has `gen_ai.operation.name` of `chat`, `text_completion` or
`generate_content`, or carries `gen_ai.input.messages`; other spans of an export (HTTP, database...)
are skipped, not rejected. Fields: `interaction_id` = `gen_ai.response.id` (so feedback can name the
response id), else `otlp:<trace id>:<span id>`; `session_id` = `gen_ai.conversation.id`, else
`session.id`, else the trace id; `user_id` = `user.id` (or the older `enduser.id`), else `anonymous`;
`model_version` = `gen_ai.response.model`, else `gen_ai.request.model`; `ts` = the span's end;
`latency_ms` = its duration; usage, finish reasons, provider and ids go into `metadata`.

Decoding takes OTLP/JSON (`ExportTraceServiceRequest` as JSON: hex ids, int64 as strings) or
protobuf bytes (`opentelemetry-proto`); both yield `OtlpSpan`s, and a span that cannot make a record
raises `RowError` with its reason (missing content, bad messages, bad timestamps).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flywheel.capture.records import RowError, format_ts

SEMCONV_VERSION = "1.37.0"
GENAI_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "human": "user",
                "assistant": "assistant", "model": "assistant", "ai": "assistant", "tool": "tool",
                "function": "tool"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OtlpSpan:
    """One span as decoded from OTLP/JSON or protobuf: hex ids, nanosecond times, plain attributes."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


# --- decoding --------------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    """An OTLP/JSON AnyValue (`{"stringValue": ...}`, `{"arrayValue": {"values": [...]}}`, ...) -> Python."""
    if not isinstance(value, Mapping):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_json_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return _json_attributes((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _json_attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        raise RowError("wrong_type", f"attributes: expected a list of {{key, value}}, got {type(items).__name__}")
    out = {}
    for kv in items:
        if isinstance(kv, Mapping) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _json_value(kv.get("value"))
    return out


def _nanos(value: Any, name: str) -> int:
    try:
        ns = int(value)
    except (TypeError, ValueError):
        raise RowError("bad_timestamp", f"{name}: expected nanoseconds since the epoch, got {str(value)[:40]!r}") from None
    if ns <= 0:
        raise RowError("bad_timestamp", f"{name}: missing or zero")
    return ns


def spans_from_json(payload: Any) -> Iterator[OtlpSpan | RowError]:
    """The spans of an OTLP/JSON traces payload (`{"resourceSpans": [...]}`), in order; a span that
    cannot be decoded is yielded as its `RowError`. Raises RowError for a payload of the wrong shape."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("resourceSpans", []), list):
        raise RowError("not_otlp", "expected an OTLP traces object with a `resourceSpans` list")
    for rs in payload.get("resourceSpans") or []:
        if not isinstance(rs, Mapping):
            yield RowError("not_otlp", "resourceSpans[]: expected an object")
            continue
        resource = _json_attributes((rs.get("resource") or {}).get("attributes", []))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            for sp in (ss or {}).get("spans") or []:
                try:
                    if not isinstance(sp, Mapping):
                        raise RowError("not_otlp", "spans[]: expected an object")
                    yield OtlpSpan(
                        trace_id=str(sp.get("traceId") or ""), span_id=str(sp.get("spanId") or ""),
                        name=str(sp.get("name") or ""),
                        start_ns=_nanos(sp.get("startTimeUnixNano"), "startTimeUnixNano"),
                        end_ns=_nanos(sp.get("endTimeUnixNano"), "endTimeUnixNano"),
                        attributes=_json_attributes(sp.get("attributes") or []), resource=resource,
                    )
                except RowError as exc:
                    yield exc


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def spans_from_protobuf(body: bytes) -> Iterator[OtlpSpan | RowError]:
    """The spans of a protobuf `ExportTraceServiceRequest`; RowError(`invalid_protobuf`) when it does not parse."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise RowError("invalid_protobuf", f"not an ExportTraceServiceRequest: {exc}") from None
    for rs in request.resource_spans:
        resource = {kv.key: _proto_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                try:
                    yield OtlpSpan(
                        trace_id=sp.trace_id.hex(), span_id=sp.span_id.hex(), name=sp.name,
                        start_ns=_nanos(sp.start_time_unix_nano, "start_time_unix_nano"),
                        end_ns=_nanos(sp.end_time_unix_nano, "end_time_unix_nano"),
                        attributes={kv.key: _proto_value(kv.value) for kv in sp.attributes}, resource=resource,
                    )
                except RowError as exc:
                    yield exc


def ts_of_ns(ns: int) -> str:
    """RFC 3339 UTC (microseconds) of nanoseconds since the epoch (no float rounding)."""
    return format_ts(_EPOCH + timedelta(microseconds=ns // 1000))


# --- GenAI span -> interaction ---------------------------------------------------------------------
def is_genai(span: OtlpSpan) -> bool:
    """Whether the span is a model call under the GenAI conventions (others are skipped, not rejected)."""
    operation = span.attributes.get("gen_ai.operation.name")
    return (isinstance(operation, str) and operation in GENAI_OPERATIONS) or "gen_ai.input.messages" in span.attributes


def _structured(value: Any, name: str) -> list[Any]:
    """A messages / parts attribute: a JSON string or the same structure as OTLP values."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise RowError("bad_messages", f"{name}: not JSON ({exc})") from None
    if not isinstance(value, list):
        raise RowError("bad_messages", f"{name}: expected a list, got {type(value).__name__}")
    return value


def parts_text(parts: Any, where: str) -> str:
    """The text of a message's parts: `text` parts joined by newlines (a tool response as its JSON)."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise RowError("bad_messages", f"{where}.parts: expected a list, got {type(parts).__name__}")
    texts = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        elif kind == "tool_call_response":
            response = part.get("response")
            texts.append(response if isinstance(response, str) else json.dumps(response, ensure_ascii=False))
    return "\n".join(texts)


def chat_role(role: Any, where: str) -> str:
    """A source's role name as a ChatML role (developer -> system, model -> assistant, ...)."""
    mapped = ROLE_ALIASES.get(role.lower()) if isinstance(role, str) else None
    if mapped is None:
        raise RowError("bad_messages", f"{where}.role: {str(role)[:40]!r} is not a chat role")
    return mapped


def genai_messages(value: Any, name: str = "gen_ai.input.messages") -> list[dict[str, str]]:
    """`gen_ai.input.messages` (v1.37 shape) as ChatML `{role, content}` messages."""
    out = []
    for i, m in enumerate(_structured(value, name)):
        where = f"{name}[{i}]"
        if not isinstance(m, Mapping):
            raise RowError("bad_messages", f"{where}: expected an object")
        content = m.get("content") if "parts" not in m else None  # pre-1.37 instrumentations wrote `content`
        text = content if isinstance(content, str) else parts_text(m.get("parts", []), where)
        out.append({"role": chat_role(m.get("role"), where), "content": text})
    return out


def genai_output(value: Any) -> tuple[str, str | None]:
    """(text, finish_reason) of the first assistant message of `gen_ai.output.messages`."""
    messages = _structured(value, "gen_ai.output.messages")
    for i, m in enumerate(messages):
        if isinstance(m, Mapping) and m.get("role", "assistant") in ("assistant", "model"):
            text = m["content"] if isinstance(m.get("content"), str) else parts_text(m.get("parts", []), f"gen_ai.output.messages[{i}]")
            return text, m.get("finish_reason")
    raise RowError("bad_messages", "gen_ai.output.messages: no assistant message")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def interaction_of_span(span: OtlpSpan) -> dict[str, Any]:
    """The `CaptureWriter.log_interaction` arguments of a GenAI span, or RowError with its reason."""
    a = span.attributes
    if "gen_ai.input.messages" not in a:
        raise RowError("no_content", "gen_ai.input.messages: missing (enable the instrumentation's content capture)")
    if "gen_ai.output.messages" not in a:
        raise RowError("no_content", "gen_ai.output.messages: missing (enable the instrumentation's content capture)")
    messages = genai_messages(a["gen_ai.input.messages"])
    if "gen_ai.system_instructions" in a:
        system = parts_text(_structured(a["gen_ai.system_instructions"], "gen_ai.system_instructions"),
                            "gen_ai.system_instructions")
        messages.insert(0, {"role": "system", "content": system})
    output, finish = genai_output(a["gen_ai.output.messages"])
    if span.end_ns < span.start_ns:
        raise RowError("bad_timestamp", "the span ends before it starts")
    if not (span.trace_id and span.span_id):
        raise RowError("missing_id", "traceId / spanId: missing")
    response_id = _text(a.get("gen_ai.response.id"))
    finishes = a.get("gen_ai.response.finish_reasons")
    metadata = {
        "source": "otlp", "semconv": SEMCONV_VERSION, "trace_id": span.trace_id, "span_id": span.span_id,
        "response_id": response_id, "request_model": a.get("gen_ai.request.model"),
        "provider": a.get("gen_ai.provider.name") or a.get("gen_ai.system"),
        "input_tokens": a.get("gen_ai.usage.input_tokens"), "output_tokens": a.get("gen_ai.usage.output_tokens"),
        "finish_reason": finish or (finishes[0] if isinstance(finishes, list) and finishes else None),
        "service": span.resource.get("service.name"),
    }
    return {
        "interaction_id": response_id or f"otlp:{span.trace_id}:{span.span_id}",
        "ts": ts_of_ns(span.end_ns),
        "session_id": _text(a.get("gen_ai.conversation.id")) or _text(a.get("session.id")) or span.trace_id,
        "user_id": _text(a.get("user.id")) or _text(a.get("enduser.id")) or "anonymous",
        "model_version": _text(a.get("gen_ai.response.model")) or _text(a.get("gen_ai.request.model")) or "unknown",
        "messages": messages,
        "output": output,
        "latency_ms": (span.end_ns - span.start_ns) / 1e6,
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }
