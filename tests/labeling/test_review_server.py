"""The review page's HTTP surface: token gate, refusals, escaping (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flywheel.config import LabelingConfig
from flywheel.labeling.selection import select_batch
from flywheel.labeling.server import create_review_app, render_markdown
from flywheel.labeling.store import ReviewStore

WEEK = "2026-11-16"
TOKEN = "t0k3n-for-tests"
EVIL = "<script>alert('x')</script><img src=x onerror=alert(1)>"


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    s = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    rows = [
        {"interaction_id": f"i-{k}", "ts": f"2026-11-16T0{k}:00:00Z", "session_id": "s", "model_version": "m",
         "messages": [{"role": "user", "content": f"question {k} {EVIL}" if k == 1 else f"unrelated ask number {k * 977}"}],
         "input_text": "", "output": f"answer {k}", "confidence": None, "signal": "negative", "weight": 2.0,
         "correction_text": None, "evidence": "thumbs_down"}
        for k in range(1, 4)
    ]
    sel = select_batch(WEEK, rows, LabelingConfig(batch_size=10))
    s.register_batch(WEEK, sel.items, kind="weekly", rubric=f"# Rubric\n\n- be **kind** {EVIL}\n")
    return s


@pytest.fixture
def client(store: ReviewStore) -> TestClient:
    return TestClient(create_review_app(store, WEEK, TOKEN, reviewer="ann"))


def test_requests_without_the_token_get_403(client: TestClient) -> None:
    for path in ("/", "/api/state?reviewer=ann", "/static/review.js", "/static/review.css"):
        assert client.get(path).status_code == 403
        assert client.get(path + ("&" if "?" in path else "?") + "token=wrong").status_code == 403
    assert client.post("/api/decision", json={"item_id": "i-1", "verdict": "pass", "reviewer": "x"}).status_code == 403
    assert client.get(f"/?token={TOKEN}").status_code == 200
    assert client.get("/static/review.js", headers={"X-Review-Token": TOKEN}).status_code == 200


def test_page_escapes_batch_text(client: TestClient) -> None:
    page = client.get(f"/?token={TOKEN}")
    html = page.text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html  # the rubric, escaped
    assert "\\u003cscript\\u003e" in html  # the items, as JSON that cannot close the script tag
    assert "<strong>kind</strong>" in html  # the rubric's markdown still renders
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


def test_decisions_are_validated(client: TestClient, store: ReviewStore) -> None:
    h = {"X-Review-Token": TOKEN}
    r = client.post("/api/decision", headers=h, json={"item_id": "not-in-batch", "verdict": "pass", "reviewer": "ann"})
    assert r.status_code == 404 and "unknown item" in r.json()["error"]
    assert client.post("/api/decision", headers=h, json={"item_id": "i-1", "verdict": "ok", "reviewer": "ann"}).status_code == 422
    assert client.post("/api/decision", headers=h, json={"item_id": "i-1", "verdict": "fix", "reviewer": "ann"}).status_code == 422
    assert client.post("/api/decision", headers=h, json={"item_id": "i-1", "verdict": "pass", "reviewer": " "}).status_code == 422
    assert client.post("/api/decision", headers=h, content=b"{nope").status_code == 400
    assert store.decisions(WEEK) == []
    ok = client.post("/api/decision", headers=h, json={"item_id": "i-1", "verdict": "fix", "text": EVIL, "reviewer": "ann"})
    assert ok.status_code == 200 and ok.json()["progress"]["decided"] == 1
    assert ok.json()["decided"] == ["i-1"]  # the page moves on to items nobody has decided
    assert store.decisions(WEEK)[0].text == EVIL  # stored as text, byte for byte
    state = client.get("/api/state?reviewer=ann", headers=h).json()
    assert state["mine"]["i-1"]["verdict"] == "fix" and state["decided"] == ["i-1"]
    store.close_batch(WEEK)
    closed = client.post("/api/decision", headers=h, json={"item_id": "i-2", "verdict": "pass", "reviewer": "ann"})
    assert closed.status_code == 409


def test_rubric_markdown_is_escaped() -> None:
    out = str(render_markdown("<!-- marker -->\n# Title\n\n1. one <b>x</b>\n2. `code & more`\n\ntext *em*"))
    assert "marker" not in out and "<b>" not in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert "<h2>Title</h2>" in out and "<ol>" in out and "<code>code &amp; more</code>" in out and "<em>em</em>" in out
