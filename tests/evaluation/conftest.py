"""Evaluation fixtures: real tiny LoRA adapters (built once per session) and a local LLM-judge server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.core.storage import FlywheelHome
from tests.evaluation.eval_files import eval_rows
from tests.models.artifacts import random_adapter


@pytest.fixture(scope="session")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`better`: a LoRA trained for a few steps on the eval references; `worse`: a random non-zero LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model

    from flywheel.models.base import load_base

    root = tmp_path_factory.mktemp("adapters")
    home = FlywheelHome(root / "home")
    random_adapter(home, root / "worse")

    model, tok = load_base("tiny", home)
    better = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0))
    rows = eval_rows(10)
    tok.padding_side = "right"
    texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    prompt_lens = [len(tok(tok.apply_chat_template(r["messages"][:1], tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"]) for r in rows]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].clone()
    for i, n in enumerate(prompt_lens):
        labels[i, :n] = -100
    labels[enc["attention_mask"] == 0] = -100
    opt = torch.optim.AdamW([p for p in better.parameters() if p.requires_grad], lr=1e-2)
    better.train()
    for _ in range(20):
        better(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    better.save_pretrained(root / "better")
    return {"better": root / "better", "worse": root / "worse"}


@pytest.fixture
def judge_server() -> Iterator[tuple[str, list[dict]]]:
    """A tiny OpenAI-compatible server: grades 5 when the answer equals the reference, else 1."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    seen: list[dict] = []

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"auth": request.headers.get("authorization"), "body": body})
        user = body["messages"][-1]["content"]
        ref = user.split("Reference answer:\n")[1].split("\n\nAnswer to grade:")[0]
        answer = user.split("Answer to grade:\n")[1]
        if answer == "garbled":
            return JSONResponse({"choices": [{"message": {"role": "assistant", "content": "no idea"}}]})
        grade = 5 if answer == ref else 1
        content = json.dumps({"score": grade, "reason": "compared with the reference"})
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": content}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", seen
    server.should_exit = True
    thread.join(timeout=5)
