"""`flywheel serve`: the champion (tiny base + a real LoRA adapter, promoted in the registry) served
over HTTP on 127.0.0.1 and called with the real `openai` client; every completion is captured with
the response id as interaction id."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from flywheel.capture.landing import landing_days, landing_files
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.config import CollectorConfig
from flywheel.core.storage import FlywheelHome
from flywheel.models import registry
from flywheel.models.server import load_champion, server_app
from tests.live_server import live_server
from tests.models.artifacts import install_model, random_adapter


def landed(home: FlywheelHome, stream: str) -> list[dict]:
    return [json.loads(line) for day in landing_days(home, stream) for f in landing_files(home, stream, day)
            for line in f.read_text().splitlines()]


@pytest.fixture
def champion_home(home: FlywheelHome, tmp_path: Path) -> tuple[FlywheelHome, str]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    folder = install_model(home, "v7", random_adapter(home, tmp_path / "adapter"))
    registry.record_candidate(db, "v7", dataset_version="ds1", base_model="tiny", adapter_path=str(folder),
                              eval_set_hash="x", eval_set_version=1, scores={}, gate_passed=True, gate_reasons=[])
    registry.promote(db, "v7", by="test", reason="serve it")
    return home, db


def test_serve_the_champion_through_the_openai_client(champion_home: tuple[FlywheelHome, str]) -> None:
    home, db = champion_home
    chat = load_champion(home, db, base_model="tiny", device="cpu")
    assert chat.version == "v7" and type(chat.model).__name__.startswith("Peft")
    app = server_app(chat, CaptureWriter(home), CollectorConfig(serve_max_tokens=16))
    with live_server(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="local")
        assert [m.id for m in client.models.list()] == ["v7"]
        r = client.chat.completions.create(model="v7", messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=8, temperature=0, user="u-1")
        again = client.chat.completions.create(model="v7", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=8, temperature=0)
        assert r.choices[0].message.content == again.choices[0].message.content  # greedy: deterministic
        assert r.usage.completion_tokens <= 8 and r.choices[0].finish_reason in ("stop", "length")
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="v7", messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0, stream=True)
            if c.choices)
        assert streamed == r.choices[0].message.content
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            client.chat.completions.create(model="v7", messages=[{"role": "user", "content": "hi"}], max_tokens=99)
        with pytest.raises(openai.BadRequestError, match="role"):
            client.chat.completions.create(model="v7", messages=[{"role": "robot", "content": "hi"}])
        fb = httpx.post(f"{url}/v1/feedback", json={"response_id": r.id, "kind": "thumbs_down"})
        assert fb.json() == {"accepted": 1}
    recs = {x["interaction_id"]: x for x in landed(home, INTERACTIONS)}
    assert len(recs) == 3 and r.id in recs and again.id in recs
    rec = recs[r.id]
    assert (rec["model_version"], rec["user_id"], rec["output"]) == ("v7", "u-1", r.choices[0].message.content)
    assert rec["messages"] == [{"role": "user", "content": "hi"}] and rec["metadata"]["source"] == "flywheel_serve"
    assert [(e["interaction_id"], e["kind"]) for e in landed(home, FEEDBACK)] == [(r.id, "thumbs_down")]


def test_without_a_champion_the_base_model_serves(home: FlywheelHome, tmp_path: Path) -> None:
    chat = load_champion(home, f"sqlite:///{tmp_path / 'empty.db'}", base_model="tiny", device="cpu")
    assert chat.version == "base:tiny"
    with live_server(server_app(chat, CaptureWriter(home))) as url:
        r = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                            "max_tokens": 4, "n": 2})
    assert r.status_code == 400 and r.json()["error"]["message"] == "n: only 1 choice is supported"
