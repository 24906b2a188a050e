"""`flywheel review`: a small web page where a reviewer steps through a batch (pass / fix / reject).

Starlette + Jinja2 + uvicorn, bound to 127.0.0.1 by default. There is no login system: every request
must carry the per-run random token (`?token=` in the URL the command prints, or the `X-Review-Token`
header the page's script sends); anything else gets 403. All text is escaped by Jinja's autoescape and
the page's script only writes text with `textContent`.

Input is bounded at the door: a request body over `labeling.max_request_bytes` gets 413 (refused from
its Content-Length, else while it streams in, never read whole); a body that is not JSON, nests too
deeply, or carries text that cannot be stored (NUL, lone surrogates, a fix or reason over its limit)
gets 400 with the reason. Each request reads only what it answers with (no decision text but the
reviewer's own).
"""

from __future__ import annotations

import html
import re
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from flywheel.config import LabelingConfig
from flywheel.core.errors import InputError
from flywheel.labeling.decisions import parse_json
from flywheel.labeling.store import (
    BatchClosedError,
    ReviewError,
    ReviewStore,
    UnknownItemError,
    UnusableTextError,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_FILES = {"review.css": "text/css; charset=utf-8", "review.js": "text/javascript; charset=utf-8"}
TOKEN_HEADER = "x-review-token"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


# --- the rubric: a small, escaped markdown rendering ---------------------------------------------
def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", out)
    return out


def render_markdown(text: str) -> Markup:
    """Headings, lists, emphasis, code and paragraphs; every character of the source is escaped first,
    so no HTML from the rubric reaches the page (HTML comments are dropped)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    out: list[str] = []
    para: list[str] = []
    list_tag: str | None = None

    def flush_para() -> None:
        if para:
            out.append("<p>" + " ".join(_inline(p) for p in para) + "</p>")
            para.clear()

    def close_list() -> None:
        nonlocal list_tag
        if list_tag:
            out.append(f"</{list_tag}>")
            list_tag = None

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush_para()
            close_list()
            continue
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        bullet = re.match(r"[-*+]\s+(.*)", line)
        numbered = re.match(r"\d+[.)]\s+(.*)", line)
        if heading:
            flush_para()
            close_list()
            level = min(len(heading.group(1)) + 1, 6)  # the page owns <h1>
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            flush_para()
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                close_list()
                out.append(f"<{tag}>")
                list_tag = tag
            out.append(f"<li>{_inline((bullet or numbered).group(1))}</li>")
        else:
            close_list()
            para.append(line)
    flush_para()
    close_list()
    return Markup("\n".join(out))


# --- the app --------------------------------------------------------------------------------------
class TokenGate:
    """ASGI middleware: 403 unless the request carries the run's token (query or header)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER) or ""
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                response = PlainTextResponse("403: missing or wrong access token", status_code=403,
                                             headers=SECURITY_HEADERS)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _progress(store: ReviewStore, batch_id: str) -> dict[str, Any]:
    p = store.progress(batch_id)
    return {"items": p.items, "decided": p.decided, "decisions": p.decisions, "state": p.state}


def _decided_ids(store: ReviewStore, batch_id: str) -> list[str]:
    """Items with a decision by anyone: the page sends a reviewer to the ones still waiting, so two
    reviewers working at once split the batch instead of both starting at item 1."""
    return store.decided_item_ids(batch_id)


class _Refused(InputError):
    """A request refused before it reaches the store: the HTTP status and the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes: a larger Content-Length is refused before reading, and a
    body without one (or longer than it said) is refused as soon as it passes the limit."""
    too_large = _Refused(413, f"the request body is larger than {limit:,} bytes (labeling.max_request_bytes)")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused(400, "invalid Content-Length")
        if len(declared) > 18 or int(declared) > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _page_items(store: ReviewStore, batch_id: str) -> list[dict[str, Any]]:
    keep = ("item_id", "kind", "messages", "output", "correction_text", "signal", "evidence", "confidence",
            "duplicate_count", "interaction_id", "ts", "source")
    return [{k: it.get(k) for k in keep} for it in store.items(batch_id)]


def create_review_app(store: ReviewStore, batch_id: str, token: str, reviewer: str | None = None,
                      limits: LabelingConfig | None = None) -> ASGIApp:
    """The review page and its JSON API for one batch, behind the token gate (`limits`: the project's
    labeling section, for the request and text limits; else the defaults)."""
    limits = limits or LabelingConfig()
    info = store.batch(batch_id)  # fails early with a clear error for an unknown batch
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html"]))
    page = env.get_template("page.html")
    rubric_html = render_markdown(info.rubric) if info.rubric.strip() else Markup("")

    async def index(request: Request) -> Response:
        items = _page_items(store, batch_id)
        body = page.render(
            batch_id=batch_id, batch_kind=info.kind, token=token, items=items, rubric_html=rubric_html,
            default_reviewer=reviewer or "", progress=_progress(store, batch_id),
            max_fix_chars=limits.max_fix_chars, max_reason_chars=limits.max_reason_chars,
        )
        return HTMLResponse(body, headers=SECURITY_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(TEMPLATE_DIR / name, media_type=STATIC_FILES[name], headers=SECURITY_HEADERS)

    async def state(request: Request) -> Response:
        who = request.query_params.get("reviewer", "").strip()
        mine = {
            d.item_id: {"verdict": d.verdict, "text": d.text, "reason": d.reason}
            for d in (store.decisions(batch_id, reviewer=who) if who else [])
        }
        return JSONResponse({"progress": _progress(store, batch_id), "mine": mine,
                             "decided": _decided_ids(store, batch_id)}, headers=SECURITY_HEADERS)

    async def decide(request: Request) -> Response:
        try:
            body = parse_json(await _read_body(request, limits.max_request_bytes))
        except _Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=SECURITY_HEADERS)
        except ClientDisconnect:  # gone before the body was complete: nobody reads the answer
            return Response(status_code=400)
        except ValueError as exc:
            return JSONResponse({"error": f"the body is not usable: {exc}"}, status_code=400, headers=SECURITY_HEADERS)
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400, headers=SECURITY_HEADERS)
        try:
            row = store.validate_decision(batch_id, body.get("item_id"), body.get("reviewer"), body.get("verdict"),
                                          body.get("text"), body.get("reason"), limits=limits)
        except UnusableTextError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=SECURITY_HEADERS)
        except UnknownItemError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404, headers=SECURITY_HEADERS)
        except BatchClosedError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409, headers=SECURITY_HEADERS)
        except ReviewError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422, headers=SECURITY_HEADERS)
        store.record_decisions([row])
        return JSONResponse(
            {"ok": True, "decision": {"item_id": row["item_id"], "verdict": row["verdict"], "text": row["text"],
                                      "reason": row["reason"], "reviewer": row["reviewer"]},
             "progress": _progress(store, batch_id), "decided": _decided_ids(store, batch_id)},
            headers=SECURITY_HEADERS,
        )

    app = Starlette(routes=[
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/state", state),
        Route("/api/decision", decide, methods=["POST"]),
    ])
    return TokenGate(app, token)


class ReviewServer:
    """Serves one batch's review page with uvicorn; `run()` blocks, `start()` runs it in a thread."""

    def __init__(self, store: ReviewStore, batch_id: str, *, host: str = "127.0.0.1", port: int = 0,
                 reviewer: str | None = None, token: str | None = None, limits: LabelingConfig | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.app = create_review_app(store, batch_id, self.token, reviewer, limits)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))  # port 0: the system picks a free one
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def run(self, on_ready: Callable[[str], None] | None = None) -> None:
        if on_ready:
            on_ready(self.url)
        self.server.run(sockets=[self.sock])

    def start(self) -> ReviewServer:
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        while not self.server.started and self._thread.is_alive():
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        self.sock.close()
