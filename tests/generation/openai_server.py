"""A real OpenAI-compatible server for tests (Starlette + uvicorn on 127.0.0.1), deterministic per model name.

`/v1/chat/completions`:
- `gen-alpha`, `gen-beta`: JSON examples (beta inside a ```json fence), as many as the prompt asks for,
  numbered by a per-model counter so every input is new;
- `gen-broken`: HTTP 500 always;
- `gen-limited`: every other request a 429 with `Retry-After: 0.05`, else like gen-alpha;
- `gen-garbled`: replies that are not JSON, or JSON whose items lack fields;
- `teacher-*`: the answer in `answers` for the last user turn when known, else `TEACHER ANSWER: <input>`;
- anything else: `echo: <input>`.
`/v1/completions` (echo + logprobs): one log-probability per whitespace token, from the token's length.
Every request is recorded in `seen` (path, model, authorization header).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ASKED = re.compile(r"Write (\d+) new examples")


def _reply(content: str, prompt_tokens: int = 50) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4 + 1,
                      "total_tokens": prompt_tokens + len(content) // 4 + 1}}


def _examples(model: str, start: int, n: int) -> list[dict[str, str]]:
    topics = ["reset my password", "change the billing address", "cancel an order", "update my email",
              "get a refund", "export my invoices", "add a team member", "close my account"]
    return [{"input": f"How do I {topics[(start + i) % len(topics)]} ({model} case {start + i})?",
             "output": f"Open Settings, choose the option for case {start + i}, and confirm. ({model})"}
            for i in range(n)]


@contextmanager
def serve_openai(answers: dict[str, str] | None = None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Run the server on a free port; yields (base_url ending in /v1, seen requests)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    seen: list[dict[str, Any]] = []
    counters: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    known = answers or {}

    async def chat(request: Request) -> Any:
        body = await request.json()
        model = body.get("model", "")
        seen.append({"path": "chat", "model": model, "auth": request.headers.get("authorization"), "body": body})
        calls[model] += 1
        user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        if model == "gen-broken":
            return PlainTextResponse("upstream exploded", status_code=500)
        if model == "gen-limited" and calls[model] % 2 == 1:
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "0.05"})
        if model == "gen-garbled":
            bad = ['{"examples": [{"input": "half', "Sure! Here are some great examples for you.",
                   '{"examples": [{"question": "no input key"}, 42]}']
            return JSONResponse(_reply(bad[calls[model] % len(bad)]))
        if model.startswith("gen-"):
            m = _ASKED.search(user)
            n = int(m.group(1)) if m else 1
            items = _examples(model, counters[model], n)
            counters[model] += n
            text = json.dumps({"examples": items})
            return JSONResponse(_reply(f"```json\n{text}\n```" if model == "gen-beta" else text))
        if model.startswith("teacher-"):
            return JSONResponse(_reply(known.get(user, f"TEACHER ANSWER: {user}")))
        return JSONResponse(_reply(f"echo: {user}"))

    async def completions(request: Request) -> Any:
        body = await request.json()
        seen.append({"path": "completions", "model": body.get("model"), "auth": request.headers.get("authorization"),
                     "body": body})
        text = body["prompt"]
        tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
        logprobs = [None] + [-0.25 * (1 + len(t) % 7) for _, t in tokens[1:]] + [-0.1]
        offsets = [o for o, _ in tokens] + [len(text)]
        return JSONResponse({"choices": [{"text": text + " x", "logprobs": {
            "tokens": [t for _, t in tokens] + [" x"], "token_logprobs": logprobs, "text_offset": offsets}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/v1/completions", completions, methods=["POST"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1", seen
    finally:
        server.should_exit = True
        thread.join(timeout=5)
