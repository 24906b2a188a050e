"""The OpenAI-client wrapper with the real `openai` client against a local OpenAI-compatible server
(a Starlette app on 127.0.0.1 answering chat completions, streamed as server-sent events or not)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from flywheel.capture.openai_wrapper import capture_openai
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.core.storage import FlywheelHome
from tests.capture.importers.helpers import landed
from tests.live_server import live_server


async def chat(request: Request) -> JSONResponse | StreamingResponse:
    body = await request.json()
    answer = "echo: " + body["messages"][-1]["content"]
    n = int(time.time() * 1000) % 10**9
    if body.get("stream"):
        def events():  # noqa: ANN202
            for i, piece in enumerate(answer.split(" ")):
                delta = {"content": (" " if i else "") + piece}
                chunk = {"id": f"chatcmpl-s{n}", "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": "echo-1", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            last = {"id": f"chatcmpl-s{n}", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": "echo-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")
    return JSONResponse({"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                         "model": "echo-1", "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {"role": "assistant", "content": answer}}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})


APP = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_every_completion_is_logged_and_feedback_goes_by_response_id(home: FlywheelHome) -> None:
    from openai import AsyncOpenAI, OpenAI

    with live_server(APP) as url, CaptureWriter(home) as writer:
        client = capture_openai(OpenAI(base_url=f"{url}/v1", api_key="k"), writer, session_id=lambda: "sess-1")
        r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello"}],
                                           user="user-5")
        assert r.choices[0].message.content == "echo: hello"  # the app gets the response untouched
        client.feedback(r.id, "thumbs_up")
        stream = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a b c"}],
                                                stream=True, metadata={"user_id": "user-6"})
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "echo: a b c"
        async_client = capture_openai(AsyncOpenAI(base_url=f"{url}/v1", api_key="k"), writer, user_id="user-7")
        ar = asyncio.run(async_client.chat.completions.create(
            model="echo", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "async"}]))
        assert client.models is not None  # the rest of the client passes through
        assert client.capture_errors == async_client.capture_errors == 0
    recs = {r["interaction_id"]: r for r in landed(home, INTERACTIONS)}
    first, streamed, asynced = recs[r.id], next(v for k, v in recs.items() if k.startswith("chatcmpl-s")), recs[ar.id]
    assert (first["output"], first["session_id"], first["user_id"], first["model_version"]) == (
        "echo: hello", "sess-1", "user-5", "echo-1")
    assert first["messages"] == [{"role": "user", "content": "hello"}] and first["latency_ms"] > 0
    assert first["metadata"]["input_tokens"] == 5
    assert (streamed["output"], streamed["user_id"], streamed["metadata"]["finish_reason"]) == ("echo: a b c", "user-6", "stop")
    assert (asynced["output"], asynced["user_id"]) == ("echo: async", "user-7")
    [fb] = landed(home, FEEDBACK)
    assert (fb["interaction_id"], fb["kind"]) == (r.id, "thumbs_up")


def test_the_wrapper_is_light() -> None:
    code = ("import sys, flywheel.capture.openai_wrapper; "
            "print(sorted(m for m in ('torch', 'pandas', 'pyarrow', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
