"""The OTLP/HTTP collector's throughput and latency against direct SDK writes of the same records.

    .venv/bin/python benchmarks/collector.py [--requests 400] [--spans 20] [--clients 8]

Starts `flywheel collect`'s app with uvicorn in a subprocess on 127.0.0.1 (a temp home), then sends a
bounded load: `--requests` OTLP/JSON requests of `--spans` GenAI spans each, from `--clients`
concurrent HTTP clients (httpx, keep-alive). Every request is acknowledged only after its records are
written and fsynced. Prints events (spans landed) per second and p50 / p99 request latency, beside the
baseline: the same records written in-process with `CaptureWriter.log_interaction` and one
`CaptureWriter.sync()` per request-sized batch (what the collector does per group commit, minus HTTP,
JSON decoding and the span mapping). The landed line count is checked against what was sent.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flywheel.capture.otlp import interaction_of_span, spans_from_json  # noqa: E402
from flywheel.capture.sdk import CaptureWriter  # noqa: E402

TOKEN = "bench-token"


def _s(v: str) -> dict:
    return {"stringValue": v}


def otlp_request(start: int, spans: int) -> dict:
    now = time.time_ns()
    out = []
    for i in range(start, start + spans):
        inp = [{"role": "system", "parts": [{"type": "text", "content": "You are a support assistant."}]},
               {"role": "user", "parts": [{"type": "text", "content": f"How do I reset my password? (ticket {i})"}]}]
        answer = [{"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content":
                   "Open Settings > Account > Reset password, then follow the link we email you. " * 3}]}]
        out.append({"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": "chat support-bot",
                    "startTimeUnixNano": str(now - 300_000_000), "endTimeUnixNano": str(now),
                    "attributes": [{"key": "gen_ai.operation.name", "value": _s("chat")},
                                   {"key": "gen_ai.request.model", "value": _s("support-bot")},
                                   {"key": "gen_ai.response.id", "value": _s(f"resp-{i}")},
                                   {"key": "gen_ai.conversation.id", "value": _s(f"conv-{i // 5}")},
                                   {"key": "gen_ai.input.messages", "value": _s(json.dumps(inp))},
                                   {"key": "gen_ai.output.messages", "value": _s(json.dumps(answer))}]})
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": out}]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: str, port: int) -> None:
    import uvicorn

    from flywheel.capture.collector import collector_app
    from flywheel.config import CollectorConfig
    from flywheel.core.storage import FlywheelHome

    uvicorn.run(collector_app(FlywheelHome(home), TOKEN, CollectorConfig(max_inflight=64)),
                host="127.0.0.1", port=port, log_level="warning")


def landed_lines(home: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (home / "landing" / "interactions").rglob("*")
               if p.is_file())


def run_collector(requests: int, spans: int, clients: int) -> dict:
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", tmp, str(port)])
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            bodies = [json.dumps(otlp_request(k * spans, spans)).encode() for k in range(requests)]
            headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
            latencies: list[float] = []

            def send(chunk: list[bytes]) -> None:
                with httpx.Client(timeout=60) as client:
                    for body in chunk:
                        t = time.perf_counter()
                        r = client.post(f"{url}/v1/traces", content=body, headers=headers)
                        latencies.append(time.perf_counter() - t)
                        r.raise_for_status()

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(send, [bodies[i::clients] for i in range(clients)]))
            elapsed = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(30)
        assert landed_lines(Path(tmp)) == requests * spans, "landed lines differ from the spans sent"
    return {"events_s": requests * spans / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1000, "elapsed_s": elapsed}


def run_baseline(requests: int, spans: int) -> dict:
    batches = [[interaction_of_span(s) for s in spans_from_json(otlp_request(k * spans, spans))] for k in range(requests)]
    latencies = []
    with tempfile.TemporaryDirectory() as tmp, CaptureWriter(tmp) as writer:
        start = time.perf_counter()
        for batch in batches:
            t = time.perf_counter()
            for rec in batch:
                writer.log_interaction(**rec)
            writer.sync()
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
    return {"events_s": requests * spans / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1000, "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--spans", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    print(f"{args.requests} requests x {args.spans} spans, {args.clients} clients, {os.cpu_count()} CPUs")
    base = run_baseline(args.requests, args.spans)
    coll = run_collector(args.requests, args.spans, args.clients)
    print(f"{'':34} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'baseline: SDK writes + fsync/batch':34} {base['events_s']:>10,.0f} {base['p50_ms']:>8.2f} {base['p99_ms']:>8.2f}")
    print(f"{'collector: OTLP/HTTP JSON, durable':34} {coll['events_s']:>10,.0f} {coll['p50_ms']:>8.2f} {coll['p99_ms']:>8.2f}")


if __name__ == "__main__":
    main()
