"""`flywheel collect`: an OTLP/HTTP endpoint a serving fleet delivers capture records to.

- `POST /v1/traces`: OTLP/HTTP traces, `application/json` or `application/x-protobuf`, optionally
  gzip-encoded. GenAI spans become interactions (`flywheel.capture.otlp`); other spans are skipped. A
  span that cannot make a record is quarantined (`quarantine/collector/<day>/<id>.parquet`, with its
  reason) and counted in the OTLP `partialSuccess` of the answer; a request none of whose GenAI spans
  can be used is refused (400).
- `POST /v1/feedback`: flywheel feedback events as JSON: one event, a list, or `{"events": [...]}`;
  each `{"interaction_id" | "response_id", "kind", "text"?, "ts"?}`. All or nothing (400 names the event).
- `GET /health`: no token needed.

Every other request needs `Authorization: Bearer <token>` (401). Bodies over
`capture.collector.max_body_bytes` are refused with 413 (also once gunzipped), unknown content types
with 415, bad payloads with 400 and a reason; at most `max_inflight` requests are handled at once
(more get 503 with Retry-After, which OTLP exporters retry), so memory stays bounded under load.

Records go through the capture SDK's `CaptureWriter` into the landing zone, so capture ingests them
unchanged. One thread owns the writer: requests hand it their records and wait; it writes what has
queued up, fsyncs once (`CaptureWriter.sync`) and only then are those requests answered (group
commit): an acknowledged record is on disk, and a crash leaves it in a `.tmp` that
`recover_orphans` publishes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import queue
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flywheel.capture.otlp import (
    OtlpSpan,
    interaction_of_span,
    is_genai,
    spans_from_json,
    spans_from_protobuf,
)
from flywheel.capture.records import FEEDBACK_KINDS, RowError, format_ts
from flywheel.capture.sdk import CaptureWriter
from flywheel.config import CollectorConfig
from flywheel.core.errors import FlywheelError, InputError, StateError
from flywheel.core.records import QUARANTINE_SCHEMA, quarantine_table
from flywheel.core.storage import FlywheelHome, write_parquet

JSON_TYPE = "application/json"
PROTOBUF_TYPE = "application/x-protobuf"
COLLECTOR = "collector"

Record = tuple[str, dict[str, Any]]
"""("interaction" | "feedback", the keyword arguments of the writer's log call)."""


class HttpError(FlywheelError):
    """A request refused with `status` and a reason a client can act on."""

    def __init__(self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.headers = status, reason, detail, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.status, "error": self.reason, "message": self.detail},
                            self.status, headers=self.headers)


# --- the landing writer thread ---------------------------------------------------------------------
class DurableLanding:
    """A `CaptureWriter` owned by one thread: `submit` returns a future resolved once the records are
    written and fsynced (whatever queued meanwhile is synced together)."""

    def __init__(self, writer: CaptureWriter) -> None:
        self.writer = writer
        self._queue: queue.Queue[tuple[list[Record], Future[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="flywheel-collector-landing", daemon=True)
        self._thread.start()

    def submit(self, records: list[Record]) -> Future[int]:
        future: Future[int] = Future()
        self._queue.put((records, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            work = [b for b in batch if b is not None]
            try:
                for records, _ in work:
                    for kind, kwargs in records:
                        (self.writer.log_interaction if kind == "interaction" else self.writer.log_feedback)(**kwargs)
                self.writer.sync()
            except Exception as exc:  # noqa: BLE001 - a failed write (disk full) is told to each waiting request
                for _, future in work:
                    future.set_exception(exc)
            else:
                for records, future in work:
                    future.set_result(len(records))
            if None in batch:
                return

    def close(self) -> None:
        """Write what is queued, stop the thread, publish the files."""
        self._queue.put(None)
        self._thread.join()
        self.writer.close()


# --- request bodies --------------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The request body (gunzipped), refused with 413 past `limit` bytes before or after decompression."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HttpError(413, "too_large", f"body of {length} bytes > the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "too_large", f"body over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise HttpError(415, "unsupported_encoding", f"content-encoding {encoding!r}: send gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, "bad_gzip", f"body is not gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise HttpError(413, "too_large", f"body over the limit of {limit} bytes once decompressed")
    return out


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, "invalid_json", f"body is not JSON: {str(exc)[:200]}") from None


# --- feedback --------------------------------------------------------------------------------------
def feedback_records(payload: Any) -> list[Record]:
    """Feedback events of a `/v1/feedback` body as writer calls, or InputError naming the bad event."""
    events = payload.get("events") if isinstance(payload, dict) and "events" in payload else payload
    events = [events] if isinstance(events, dict) else events
    if not isinstance(events, list) or not events:
        raise InputError("expected a feedback event, a list of them, or {\"events\": [...]}")
    records = []
    for i, event in enumerate(events):
        where = f"events[{i}]"
        if not isinstance(event, dict):
            raise InputError(f"{where}: expected an object")
        iid = event.get("interaction_id", event.get("response_id"))
        if not isinstance(iid, str) or not iid.strip():
            raise InputError(f"{where}: interaction_id (or response_id) missing")
        kind, text = event.get("kind"), event.get("text")
        if kind not in FEEDBACK_KINDS:
            raise InputError(f"{where}.kind: {str(kind)[:40]!r} is not one of {list(FEEDBACK_KINDS)}")
        if text is not None and not isinstance(text, str):
            raise InputError(f"{where}.text: expected a string")
        if kind == "correction" and not (text and text.strip()):
            raise InputError(f"{where}.text: a correction needs the corrected text")
        try:
            ts = format_ts(event.get("ts"))
        except (RowError, ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"{where}.ts: {exc}") from None
        records.append(("feedback", {"interaction_id": iid, "kind": kind, "text": text, "ts": ts}))
    return records


# --- traces ----------------------------------------------------------------------------------------
@dataclass
class TraceBatch:
    """What one OTLP request holds: records to land, spans skipped (not GenAI), spans rejected."""

    records: list[Record]
    skipped: int
    rejected: list[tuple[int, RowError, str]]  # (span index, error, the span as text)


def trace_batch(spans: Iterable[OtlpSpan | RowError]) -> TraceBatch:
    batch = TraceBatch([], 0, [])
    for index, span in enumerate(spans):
        if isinstance(span, RowError):
            batch.rejected.append((index, span, ""))
            continue
        if not is_genai(span):
            batch.skipped += 1
            continue
        try:
            batch.records.append(("interaction", interaction_of_span(span)))
        except RowError as exc:
            raw = json.dumps({"traceId": span.trace_id, "spanId": span.span_id, "name": span.name,
                              "attributes": span.attributes}, ensure_ascii=False, default=str)
            batch.rejected.append((index, exc, raw))
    return batch


def quarantine_spans(home: FlywheelHome, source: str, rejected: list[tuple[int, RowError, str]]) -> str:
    """Write rejected spans to `quarantine/collector/<day>/<id>.parquet` (QUARANTINE_SCHEMA); its path."""
    day = datetime.now(UTC).date().isoformat()
    target = home.quarantine(COLLECTOR) / day / f"{uuid.uuid4().hex}.parquet"
    rows = [dict(zip(QUARANTINE_SCHEMA.names, (source, i, e.reason, f"{source}: span {i}: {e.detail}", raw), strict=True))
            for i, e, raw in rejected]
    write_parquet(quarantine_table(rows), target)
    return str(target.relative_to(home.root))


def _rejection_message(rejected: list[tuple[int, RowError, str]]) -> str:
    shown = "; ".join(f"span {i}: {e.reason}: {e.detail}" for i, e, _ in rejected[:5])
    return shown + (f"; ... {len(rejected) - 5} more" if len(rejected) > 5 else "")


def _traces_response(protobuf: bool, rejected: int, message: str) -> Response:
    if protobuf:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        answer = ExportTraceServiceResponse()
        if rejected:
            answer.partial_success.rejected_spans = rejected
            answer.partial_success.error_message = message
        return Response(answer.SerializeToString(), media_type=PROTOBUF_TYPE)
    body = {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}} if rejected else {}
    return JSONResponse(body)


# --- the app ---------------------------------------------------------------------------------------
def collector_app(home: FlywheelHome, token: str, config: CollectorConfig | None = None,
                  *, writer: CaptureWriter | None = None) -> Starlette:
    """The collector's ASGI app; records land in `home` (through `writer`, default a new CaptureWriter)."""
    if not token:
        raise StateError("the collector needs a bearer token (set capture.collector.token_env's variable)")
    cfg = config or CollectorConfig()
    expected = f"Bearer {token}".encode()
    state: dict[str, Any] = {"inflight": 0}

    def guard(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
                return HttpError(401, "unauthorized", "missing or wrong bearer token",
                                 {"WWW-Authenticate": "Bearer"}).response()
            if state["inflight"] >= cfg.max_inflight:
                return HttpError(503, "busy", f"{cfg.max_inflight} requests in flight; retry",
                                 {"Retry-After": str(cfg.retry_after_s)}).response()
            state["inflight"] += 1
            try:
                return await handler(request)
            except HttpError as exc:
                return exc.response()
            except InputError as exc:
                return HttpError(400, "bad_payload", str(exc)).response()
            finally:
                state["inflight"] -= 1
        return endpoint

    async def land(records: list[Record]) -> None:
        try:
            await asyncio.wrap_future(state["landing"].submit(records))
        except OSError as exc:
            raise HttpError(503, "landing_failed", f"could not write the landing zone: {exc}",
                            {"Retry-After": str(cfg.retry_after_s)}) from None

    async def traces(request: Request) -> Response:
        kind = media_type(request)
        if kind not in (JSON_TYPE, PROTOBUF_TYPE):
            raise HttpError(415, "unsupported_media_type", f"content-type {kind!r}: send {JSON_TYPE} or {PROTOBUF_TYPE}")
        body = await read_body(request, cfg.max_body_bytes)
        try:
            spans = spans_from_protobuf(body) if kind == PROTOBUF_TYPE else spans_from_json(parse_json(body))
            batch = trace_batch(spans)
        except RowError as exc:
            raise HttpError(400, exc.reason, exc.detail) from None
        message = _rejection_message(batch.rejected)
        if batch.rejected:
            source = f"collector /v1/traces from {request.client.host if request.client else '?'}"
            where = await asyncio.to_thread(quarantine_spans, home, source, batch.rejected)
            message += f" (quarantined in {where})"
        if batch.rejected and not batch.records:
            raise HttpError(400, "no_usable_spans", message)
        if batch.records:
            await land(batch.records)
        return _traces_response(kind == PROTOBUF_TYPE, len(batch.rejected), message)

    async def feedback(request: Request) -> Response:
        if media_type(request) != JSON_TYPE:
            raise HttpError(415, "unsupported_media_type", f"send feedback as {JSON_TYPE}")
        records = feedback_records(parse_json(await read_body(request, cfg.max_body_bytes)))
        await land(records)
        return JSONResponse({"accepted": len(records)})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["landing"] = DurableLanding(writer or CaptureWriter(home))
        try:
            yield
        finally:
            await asyncio.to_thread(state["landing"].close)

    return Starlette(routes=[
        Route("/v1/traces", guard(traces), methods=["POST"]),
        Route("/v1/feedback", guard(feedback), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=lifespan)


def serve_collector(home: FlywheelHome, token: str, config: CollectorConfig, host: str, port: int) -> None:
    """Run the collector with uvicorn until interrupted (the landing files are published on exit)."""
    import uvicorn

    uvicorn.run(collector_app(home, token, config), host=host, port=port, log_level="info")
