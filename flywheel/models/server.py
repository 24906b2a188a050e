"""`flywheel serve`: a small OpenAI-compatible chat-completions server of the champion, with capture.

For local use, the demo and tests: the registry's champion (base model + LoRA adapter, loaded with
`load_adapter`), or the base model before the first promotion, generates with transformers (one
request at a time). Every completion is logged through the capture SDK with its response id as
interaction id, so feedback (`POST /v1/feedback`, as the collector takes it) needs only that id.
Production serving stays vLLM, from the serving export (`flywheel.models.serving`).

Routes: `POST /v1/chat/completions` (`messages`, `max_tokens` / `max_completion_tokens` up to
`capture.collector.serve_max_tokens`, `temperature` (0: greedy), `top_p`, `seed`, `stream`, `user`,
`metadata`; `n` must be 1), `GET /v1/models`, `POST /v1/feedback`, `GET /health`. Refusals are
OpenAI-style errors (`{"error": {"message", "type", "param", "code"}}`), bodies over
`max_body_bytes` get 413, more than `max_inflight` waiting requests 503.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from flywheel.capture.collector import HttpError, feedback_records, parse_json, read_body
from flywheel.capture.openai_records import chat_messages, interaction_of_completion
from flywheel.capture.records import RowError, format_ts
from flywheel.capture.sdk import CaptureWriter
from flywheel.config import CollectorConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome
from flywheel.models.artifact import load_adapter, read_artifact
from flywheel.models.base import load_base
from flywheel.models.registry import current_champion

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length


class ChatModel:
    """A loaded model and tokenizer that answers one chat at a time."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, version: str) -> None:
        self.model, self.tokenizer, self.version = model.eval(), tokenizer, version
        self._lock = threading.Lock()

    def generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float, top_p: float,
                 seed: int | None) -> Generation:
        import torch

        tok = self.tokenizer
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        sample = temperature > 0
        kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": max_tokens, "eos_token_id": tok.eos_token_id,
                                  "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id}
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        with self._lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(**enc, **kwargs)
        new = out[0, enc["input_ids"].shape[1]:].tolist()
        stopped = bool(new) and new[-1] == tok.eos_token_id
        return Generation(tok.decode(new, skip_special_tokens=True).strip(), int(enc["input_ids"].shape[1]),
                          len(new), "stop" if stopped or len(new) < max_tokens else "length")


def resolve_device(device: str = "auto") -> str:
    """`auto`: a GPU when torch sees one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_champion(home: FlywheelHome, database_url: str, base_model: str, device: str = "auto") -> ChatModel:
    """The registry's champion (base + adapter), or `base_model` when nothing was promoted yet."""
    device = resolve_device(device)
    dtype = "bfloat16" if device.startswith("cuda") else None
    record = current_champion(database_url)
    if record is None:
        model, tokenizer = load_base(base_model, home, dtype=dtype, device=device)
        return ChatModel(model, tokenizer, f"base:{base_model}")
    artifact = read_artifact(home, record.version, record.adapter_path)
    model, tokenizer = load_adapter(artifact, home, dtype=dtype, device=device)
    return ChatModel(model, tokenizer, record.version)


def _openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InputError(f"{name}: expected a number in [{low}, {high}], got {str(value)[:40]!r}")
    return float(value)


def parse_request(body: Any, limit: int) -> dict[str, Any]:
    """The checked parameters of a chat-completions request, or InputError naming the parameter."""
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object")
    try:
        messages = chat_messages(body.get("messages"))[0]
    except RowError as exc:
        raise InputError(exc.detail) from None
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens")) or min(256, limit)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= limit:
        raise InputError(f"max_tokens: expected an integer in [1, {limit}], got {str(max_tokens)[:40]!r}")
    if body.get("n", 1) not in (1, None):
        raise InputError("n: only 1 choice is supported")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InputError("seed: expected an integer")
    return {"messages": messages, "max_tokens": max_tokens, "seed": seed,
            "temperature": _number(body, "temperature", 1.0, 0.0, 2.0), "top_p": _number(body, "top_p", 1.0, 0.0, 1.0)}


def server_app(chat: ChatModel, writer: CaptureWriter, config: CollectorConfig | None = None) -> Starlette:
    """The ASGI app serving `chat`, logging every completion through `writer` (closed on shutdown)."""
    cfg = config or CollectorConfig()
    state = {"waiting": 0}

    async def completions(request: Request) -> Response:
        if state["waiting"] >= cfg.max_inflight:
            return _openai_error(503, f"{cfg.max_inflight} requests waiting; retry", code="busy")
        state["waiting"] += 1
        try:
            body = parse_json(await read_body(request, cfg.max_body_bytes))
            params = parse_request(body, cfg.serve_max_tokens)
            start = time.perf_counter()
            result = await asyncio.to_thread(chat.generate, params["messages"], params["max_tokens"],
                                             params["temperature"], params["top_p"], params["seed"])
            latency_ms = (time.perf_counter() - start) * 1000
        except HttpError as exc:
            return _openai_error(exc.status, exc.detail, code=exc.reason)
        except InputError as exc:
            return _openai_error(400, str(exc))
        finally:
            state["waiting"] -= 1
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": chat.version, "system_fingerprint": chat.version,
            "choices": [{"index": 0, "finish_reason": result.finish_reason,
                         "message": {"role": "assistant", "content": result.text}}],
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                      "total_tokens": result.prompt_tokens + result.completion_tokens},
        }
        record = interaction_of_completion({**body, "messages": body["messages"]}, completion,
                                           latency_ms=latency_ms, source="flywheel_serve")
        record["ts"] = format_ts()
        await asyncio.to_thread(writer.log_interaction, **record)
        if body.get("stream"):
            return StreamingResponse(_sse(completion), media_type="text/event-stream")
        return JSONResponse(completion)

    async def feedback(request: Request) -> Response:
        try:
            records = feedback_records(parse_json(await read_body(request, cfg.max_body_bytes)))
        except HttpError as exc:
            return _openai_error(exc.status, exc.detail, code=exc.reason)
        except InputError as exc:
            return _openai_error(400, str(exc))
        for _, kwargs in records:
            writer.log_feedback(**kwargs)
        return JSONResponse({"accepted": len(records)})

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": chat.version, "object": "model", "created": 0, "owned_by": "flywheel"}]})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "model": chat.version})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            writer.close()

    return Starlette(routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=lifespan)


async def _sse(completion: dict[str, Any]) -> AsyncIterator[str]:
    """The completion as chat.completion.chunk events: the whole answer in one delta, then the finish."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")} | {"object": "chat.completion.chunk"}
    choice = completion["choices"][0]
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": choice["message"]["content"]},
                                  "finish_reason": None}]}
    last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
            "usage": completion["usage"]}
    yield f"data: {json.dumps(first)}\n\n"
    yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"


def serve(home: FlywheelHome, database_url: str, base_model: str, config: CollectorConfig, host: str, port: int,
          device: str = "auto") -> None:
    """Load the champion and serve it with uvicorn until interrupted."""
    import uvicorn

    chat = load_champion(home, database_url, base_model, device)
    uvicorn.run(server_app(chat, CaptureWriter(home), config), host=host, port=port, log_level="info")
