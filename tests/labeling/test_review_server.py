"""The review page's HTTP surface: token gate, refusals, escaping, bounded input (no browser)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from flywheel.config import LabelingConfig
from flywheel.labeling.selection import select_batch
from flywheel.labeling.server import ReviewServer, create_review_app, render_markdown
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


# --- bounded input, over real HTTP (issue 11: 50 MB bodies accepted, 500s on nesting and surrogates) ---
LIMITS = LabelingConfig(max_request_bytes=8192, max_fix_chars=1000, max_reason_chars=100)


@pytest.fixture
def live(store: ReviewStore) -> Iterator[ReviewServer]:
    server = ReviewServer(store, WEEK, token=TOKEN, limits=LIMITS).start()
    try:
        yield server
    finally:
        server.stop()


def _send(server: ReviewServer, raw: bytes) -> tuple[int, dict]:
    """Send a raw HTTP request; the status and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body.split(b"\r\n")[1] if b"chunked" in head.lower() else body)


def _post(server: ReviewServer, body: bytes, headers: str | None = None) -> tuple[int, dict]:
    headers = headers if headers is not None else f"Content-Length: {len(body)}\r\n"
    return _send(server, f"POST /api/decision HTTP/1.1\r\nHost: x\r\nX-Review-Token: {TOKEN}\r\n"
                         f"Content-Type: application/json\r\n{headers}Connection: close\r\n\r\n".encode() + body)


def test_an_oversized_body_is_refused_with_413(live: ReviewServer, store: ReviewStore) -> None:
    # a Content-Length over the limit is refused before one byte of the body is read
    status, answer = _post(live, b"", headers="Content-Length: 52428800\r\n")
    assert status == 413 and "larger than 8,192 bytes (labeling.max_request_bytes)" in answer["error"]
    # without a Content-Length the body is counted while it streams in
    body = json.dumps({"item_id": "i-1", "verdict": "fix", "reviewer": "ann", "text": "x" * 9000}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[k:k + 1000]), body[k:k + 1000]) for k in range(0, len(body), 1000))
    status, answer = _post(live, chunked + b"0\r\n\r\n", headers="Transfer-Encoding: chunked\r\n")
    assert status == 413
    assert store.decisions(WEEK) == []
    ok = json.dumps({"item_id": "i-1", "verdict": "fix", "reviewer": "ann", "text": "x" * 900}).encode()
    assert _post(live, ok)[0] == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"item_id": "i-1", "verdict": "fix", "reviewer": "ann", "text": "a\\u0000b"}',
         "the fixed answer (text) contains a NUL character at position 1; remove it"),
        (b'{"item_id": "i-1", "verdict": "fix", "reviewer": "ann", "text": "\\ud800"}', "contains a lone surrogate (U+D800)"),
        (b'{"item_id": "i-1", "verdict": "reject", "reviewer": "ann\\u0000", "reason": "r"}', "reviewer name contains a NUL"),
        (b'{"item_id": "i-1", "verdict": "reject", "reviewer": "ann", "reason": "' + b"r" * 101 + b'"}',
         "the reason is 101 characters long; at most 100"),
        (b'{"item_id": "i-1", "verdict": "fix", "reviewer": "ann", "text": "' + b"t" * 1001 + b'"}', "at most 1,000"),
        (b"[" * 4000 + b"]" * 4000, "nested too deeply"),
        (b'{"item_id": "i-1", "verdict": "pass", "reviewer": "ann", "n": ' + b"9" * 5000 + b"}", "too many digits"),
        (b'{"item_id": "i-1", "verdict": "pass", "reviewer": "\xff"}', "not UTF-8"),
    ],
)
def test_unusable_text_is_refused_with_400(live: ReviewServer, store: ReviewStore, body: bytes, reason: str) -> None:
    status, answer = _post(live, body)
    assert status == 400 and reason in answer["error"]
    assert store.decisions(WEEK) == []


def test_a_decision_reads_no_decision_text(live: ReviewServer, store: ReviewStore) -> None:
    """Issue 11: a stored 50 MB fix made every later decision ~50x slower (each request read every fix).
    Asserted on what the store is asked, not on timing: no request but the reviewer's own state reads a fix."""
    old = store.validate_decision(WEEK, "i-2", "old", "pass")
    store.record_decisions([dict(old, verdict="fix", text="y" * 5_000_000)])  # stored before any limit existed
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        body = json.dumps({"item_id": "i-1", "verdict": "pass", "reviewer": "ann"}).encode()
        status, answer = _post(live, body)
        assert status == 200 and answer["decided"] == ["i-1", "i-2"] and answer["progress"]["decided"] == 2
        decide = list(statements)
        _send(live, f"GET /api/state?reviewer=ann&token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        state = statements[len(decide):]
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    reads = [s for s in decide if s.startswith("SELECT")]
    assert reads and not [s for s in reads if re.search(r"review_decisions\.(text|reason)|\bpayload\b|\brubric\b", s)]
    assert all("review_decisions.reviewer = " in s for s in state if "review_decisions.text" in s)
