"""OpenAI importer on files written from the `openai` package's own types (ChatCompletion,
ChatCompletionStoreMessage; `model_dump` writes what the API returns)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from openai.types.chat import ChatCompletion, ChatCompletionStoreMessage

from flywheel.capture.importers import import_file
from flywheel.core.storage import FlywheelHome
from tests.capture.importers.helpers import capture_day, landed

CREATED = 1772452800  # 2026-03-02T12:00:00Z


def completion(i: int, answer: str = "Paris", **extra: object) -> ChatCompletion:
    return ChatCompletion.model_validate({
        "id": f"chatcmpl-{i}", "object": "chat.completion", "created": CREATED + i, "model": "gpt-x-2026",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}, **extra})


def test_request_response_jsonl_lands_once_and_capture_accepts_it(home: FlywheelHome, tmp_path: Path) -> None:
    request = {"model": "gpt-x", "user": "u-1", "messages": [
        {"role": "developer", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    lines = [{"request": request, "response": completion(i).model_dump(mode="json"), "latency_ms": 120 + i}
             for i in range(3)]
    lines.insert(1, {"request": request, "response": {"id": "chatcmpl-bad", "created": CREATED, "choices": []}})
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n", encoding="utf-8")

    report = import_file(home, "openai", path)
    assert (report.rows_read, report.interactions, report.quarantined) == (5, 3, 2) and report.conserved
    assert report.days == {"2026-03-02"}
    rows = pq.read_table(report.quarantine_file).to_pylist()
    assert [(r["line"], r["reason"]) for r in rows] == [(2, "missing_field"), (5, "invalid_json")]
    assert rows[0]["detail"].startswith("calls.jsonl:2: response.choices")

    first = {r["interaction_id"]: r for r in landed(home)}
    assert set(first) == {"chatcmpl-0", "chatcmpl-1", "chatcmpl-2"}
    rec = first["chatcmpl-1"]
    assert rec["messages"] == [{"role": "system", "content": "Answer in one word."},
                               {"role": "user", "content": "Capital of France?"}]
    assert (rec["output"], rec["user_id"], rec["model_version"], rec["latency_ms"]) == ("Paris", "u-1", "gpt-x-2026", 121.0)
    assert rec["metadata"]["non_text_parts"] == 1 and rec["metadata"]["input_tokens"] == 9

    again = import_file(home, "openai", path)  # idempotent: nothing new lands
    assert (again.interactions, again.already_landed, again.quarantined) == (0, 3, 2)
    assert len(landed(home)) == 3
    # one session asked the same question three times in 2 s: capture sees the first two as resubmitted
    assert capture_day(home, "2026-03-02") == {"chatcmpl-0": "negative", "chatcmpl-1": "negative", "chatcmpl-2": "none"}


def test_stored_completions_list_with_their_messages(home: FlywheelHome, tmp_path: Path) -> None:
    page = {"object": "list", "first_id": "chatcmpl-7", "last_id": "chatcmpl-8", "has_more": False, "data": []}
    for i in (7, 8):
        c = completion(i, metadata={"session_id": "s-42", "user_id": "u-9"}).model_dump(mode="json")
        # the messages endpoint returns the input messages; the SDK's type declares role "assistant" only
        message = ChatCompletionStoreMessage.model_construct(id=f"chatcmpl-{i}-0", role="user", content=f"question {i}",
                                                             content_parts=None)
        c["messages"] = {"object": "list", "data": [message.model_dump(mode="json")]}
        page["data"].append(c)
    path = tmp_path / "stored.json"
    path.write_text(json.dumps(page), encoding="utf-8")
    report = import_file(home, "openai", path)
    assert report.interactions == 2 and report.conserved
    recs = sorted(landed(home), key=lambda r: r["interaction_id"])
    assert [(r["session_id"], r["user_id"], r["messages"][0]["content"]) for r in recs] == [
        ("s-42", "u-9", "question 7"), ("s-42", "u-9", "question 8")]
    assert recs[0]["metadata"]["latency_unknown"] is True and recs[0]["latency_ms"] == 0.0
