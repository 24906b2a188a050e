"""Capture stage throughput and memory against DuckDB's bare read_json -> Parquet of the same files.

    .venv/bin/python benchmarks/capture.py --events 1000000 [--workers N] [--pii-compare] [--s3]

Generates one day of realistic traffic with the capture SDK (real instructions and answers from the
Alpaca sample in ../shared/datasets, PII in some rows, sessions with resubmissions, feedback events,
a few broken lines, several landing files), then runs, each in its own subprocess so that peak RSS
(ru_maxrss) is measured per side:
- capture: `ingest_interactions` + `compute_signals`, the functions the Dagster assets call (ingestion
  validates and redacts in `ingest_workers()` worker processes; their peak RSS is reported beside
  the main process's);
- baseline: DuckDB `read_json` of the same interaction and feedback files written to Parquet.
`--s3` runs the capture again with the home in a bucket of an S3 server started on 127.0.0.1 (moto's,
from the dev extra), the same landing files uploaded there, and prints its ratio beside the local one.
`--pii-compare` also times presidio-analyzer's pattern recognizers (if installed) against
`flywheel.capture.pii` on the same texts, and the NER pass of training-bound rows (`capture.pii.ner`,
a spaCy pipeline, if one is installed: `--ner-model NAME`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flywheel.capture.ingestion import ingest_interactions, ingest_workers  # noqa: E402
from flywheel.capture.landing import landing_files  # noqa: E402
from flywheel.capture.records import FEEDBACK, INTERACTIONS  # noqa: E402
from flywheel.capture.sdk import CaptureWriter  # noqa: E402
from flywheel.capture.signals import compute_signals  # noqa: E402
from flywheel.config import CaptureConfig  # noqa: E402
from flywheel.core.storage import FlywheelHome  # noqa: E402

DATASET = REPO.parent / "shared" / "datasets" / "alpaca_llamafactory_demo.json"
DAY = "2026-01-05"
SYSTEM = "You are a helpful assistant for Acme Corp. Answer briefly and politely."
PII = ["jane.doe@example.com", "+1 415-555-0134", "4111 1111 1111 1111", "sk-proj-abcdefghijklmnop1234567890",
       "192.168.10.24", "password=hunter2hunter2", "(030) 1234 5678",
       # the kinds capture.pii learnt later (issue 12): IBAN, SSN, national phones, tokens, Unicode e-mail, ...
       "IBAN DE89 3704 0044 0532 0130 00", "SSN 123-45-6789", "06 12 34 56 78", "+91 98765 43210",
       "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "jürgen.müller@beispiel.de", "my password is Tr0ub4dor&3",
       "742 Evergreen Terrace, Springfield, IL 62704", "date of birth: 04/12/1985"]  # fmt: skip


def generate(home: FlywheelHome, events: int, seed: int = 0) -> dict[str, int]:
    """One day of traffic: `events` interactions in files of <= 100k rows, feedback, bad lines."""
    rows = json.loads(DATASET.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    start = 1767571200.0  # 2026-01-05T00:00:00Z
    step = 86_000.0 / max(events, 1)
    counts = {"interactions": 0, "feedback": 0, "resubmissions": 0, "pii_rows": 0, "bad_lines": 0}
    with CaptureWriter(home, max_records=100_000, max_bytes=1 << 30, max_age_s=1e9) as writer:
        i = 0
        while i < events:
            row = rng.choice(rows)
            prompt = f"{row['instruction']}\n{row['input']}".strip() + f" (ticket {rng.randrange(10**6)})"
            if rng.random() < 0.05:
                prompt += f" Contact: {rng.choice(PII)}"
                counts["pii_rows"] += 1
            session = f"sess-{rng.randrange(events // 4 + 1)}"
            ts = start + i * step
            iid = writer.log_interaction(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                row["output"], session_id=session, user_id=f"user-{rng.randrange(5000)}", model_version="m-2026-01",
                latency_ms=rng.uniform(50, 2000), confidence=rng.random(), metadata={"app": "web", "lang": "en"}, ts=ts,
            )  # fmt: skip
            i += 1
            r = rng.random()
            if r < 0.05 and i < events:  # the user tries again with a slightly different wording
                writer.log_interaction(
                    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt + " please!"}],
                    row["output"], session_id=session, user_id="user-r", model_version="m-2026-01",
                    latency_ms=120.0, ts=ts + rng.uniform(5, 100),
                )  # fmt: skip
                counts["resubmissions"] += 1
                i += 1
            elif r < 0.35:
                kind = rng.choice(["copy", "copy", "thumbs_up", "thumbs_down", "correction", "resubmit"])
                text = f"Better answer: {row['output'][:200]}" if kind == "correction" else None
                writer.log_feedback(iid, kind, text=text, ts=ts + 30)
                counts["feedback"] += 1
    bad = [b"{broken json", b'{"interaction_id": 5}', b"\xff\xfe not utf-8", b'{"interaction_id": "x", "ts": "soon"}',
           # rows that used to stop the whole run: a number over 4,300 digits, a list as role, a lone surrogate
           b'{"interaction_id": "x", "latency_ms": ' + b"9" * 5000 + b"}",
           b'{"interaction_id": "x", "ts": "2026-01-05T01:00:00Z", "messages": [{"role": ["user"]}]}',
           b'{"interaction_id": "x", "ts": "2026-01-05T01:00:00Z", "session_id": "s", "user_id": "u", '
           b'"model_version": "m", "messages": [{"role": "user", "content": "q"}], "output": "\\ud800", "latency_ms": 1}',
           b'{"interaction_id": "x", "ts": 0}']  # fmt: skip
    with open(home.landing(INTERACTIONS, DAY) / "zz-bad-lines.jsonl", "wb") as fh:
        for k in range(max(events // 1000, 4)):
            fh.write(bad[k % len(bad)] + b"\n")
            counts["bad_lines"] += 1
    counts["interactions"] = i
    return counts


def run_capture(home: FlywheelHome, workers: int | None = None) -> dict[str, object]:
    config = CaptureConfig()
    t0 = time.perf_counter()
    ingest = ingest_interactions(home, DAY, config, workers=workers)
    t1 = time.perf_counter()
    signals = compute_signals(home, DAY, config)
    t2 = time.perf_counter()
    return {
        "seconds": t2 - t0, "ingest_s": t1 - t0, "signals_s": t2 - t1,
        "rows_read": ingest.rows_read, "rows_accepted": ingest.rows_accepted, "rows_quarantined": ingest.rows_quarantined,
        "pii_hits": dict(ingest.pii_hits), "signals": dict(signals.signals), "resubmissions": signals.resubmissions,
    }  # fmt: skip


def run_baseline(home: FlywheelHome, out: Path) -> dict[str, object]:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    result = {}
    for stream in (INTERACTIONS, FEEDBACK):
        files = [str(p) for p in landing_files(home, stream, DAY)]
        con.execute(
            f"COPY (SELECT * FROM read_json({files!r}, format='newline_delimited', ignore_errors=true)) "
            f"TO '{out / stream}.parquet' (FORMAT parquet, COMPRESSION zstd)"
        )
        result[f"{stream}_rows"] = con.execute(f"SELECT count(*) FROM '{out / stream}.parquet'").fetchone()[0]  # type: ignore[index]
    result["seconds"] = time.perf_counter() - t0
    return result


def _child(stage: str, home: str, workers: int | None) -> None:
    h = FlywheelHome(home)
    result = run_capture(h, workers) if stage == "capture" else run_baseline(h, Path(tempfile.mkdtemp(dir=home)))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["worker_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker
    result["workers"] = (workers or ingest_workers()) if stage == "capture" else 0
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds (every thread and worker): the ratio that other load on a shared machine barely moves
    result["cpu_s"] = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps(result))


def _in_subprocess(stage: str, home: FlywheelHome, workers: int | None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", stage, "--home", str(home.root)]
    # capture pseudonymises user and session ids (capture.pseudonymize, the default) with a key from the environment
    env = {**os.environ, "FLYWHEEL_PSEUDONYM_KEY": os.environ.get("FLYWHEEL_PSEUDONYM_KEY") or "benchmark-key-not-secret"}
    out = subprocess.run([*cmd, *(["--workers", str(workers)] if workers else [])], check=True, capture_output=True,
                         text=True, env=env)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _capture_on_s3(local: FlywheelHome, workers: int | None) -> dict[str, object]:
    """Upload the landing files to a bucket on a moto S3 server in this process and capture there."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_REGION="us-east-1")  # fmt: skip
    try:
        boto3.client("s3").create_bucket(Bucket="flywheel-bench")
        home = FlywheelHome("s3://flywheel-bench/home")
        for stream in (INTERACTIONS, FEEDBACK):
            for path in landing_files(local, stream, DAY):
                home.root.fs.put_file(str(path), f"{home.landing(stream, DAY).path}/{path.name}")
        return _in_subprocess("capture", home, workers)
    finally:
        server.stop()


def compare_pii(n: int = 3000, ner_models: list[str] | None = None) -> None:
    """flywheel.capture.pii against presidio-analyzer's pattern recognizers on the same texts; the NER pass."""
    from flywheel.capture.pii import PiiRedactor, TrainingTextScrubber
    from flywheel.config import PiiConfig

    rows = json.loads(DATASET.read_text(encoding="utf-8"))
    rng = random.Random(1)
    texts = [f"{r['instruction']} {r['input']} {r['output']}" + (f" {rng.choice(PII)}" if rng.random() < 0.1 else "")
             for r in (rng.choice(rows) for _ in range(n))]  # fmt: skip
    mb = sum(len(t) for t in texts) / 1e6
    import pyarrow as pa

    PiiRedactor().redact_array(pa.array(texts[:10]))  # warm up
    t0 = time.perf_counter()
    PiiRedactor().redact_array(pa.array(texts))
    ours = time.perf_counter() - t0
    print(f"flywheel.capture.pii (RE2 prefilter + exact re): {n / ours:,.0f} texts/s ({mb / ours:.1f} MB/s)")
    scrubber = TrainingTextScrubber(PiiConfig(ner_models=ner_models or ["en_core_web_sm"]))
    if scrubber.scan.ner:
        scrubber.scrub_texts(texts[:20])  # warm up
        t0 = time.perf_counter()
        scrubber.scrub_texts(texts[:500])
        ner = time.perf_counter() - t0
        print(f"training-bound rows, patterns + NER ({scrubber.scan.model}): {500 / ner:,.0f} texts/s "
              f"(a 200-item labeling batch: {200 / (500 / ner):.1f}s; 20,000 dataset rows: {20_000 / (500 / ner):.0f}s)")
    else:
        print(f"NER pass not timed: {scrubber.scan.reason}")
    try:
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IpRecognizer,
            PhoneRecognizer,
        )  # fmt: skip
    except ImportError:
        print("presidio-analyzer not installed: `pip install presidio-analyzer` to compare")
        return
    t_load = time.perf_counter()
    recognizers = [EmailRecognizer(), CreditCardRecognizer(), IpRecognizer(), PhoneRecognizer()]
    for rec in recognizers:  # warm up (the email recognizer's tldextract loads its suffix list here)
        rec.analyze("mail a@b.com", rec.supported_entities, None)
    load = time.perf_counter() - t_load
    t0 = time.perf_counter()
    for t in texts:
        for rec in recognizers:
            rec.analyze(t, rec.supported_entities, None)
    theirs = time.perf_counter() - t0
    print(f"presidio pattern recognizers (email, card, ip, phone; no secrets): {n / theirs:,.0f} texts/s "
          f"({mb / theirs:.2f} MB/s), load {load:.1f}s -> {theirs / ours:.0f}x slower")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, help="ingestion worker processes (default: ingest_workers(); 1: none)")
    parser.add_argument("--pii-compare", action="store_true")
    parser.add_argument("--ner-model", action="append", help="spaCy pipeline(s) for the NER timing of --pii-compare")
    parser.add_argument("--s3", action="store_true", help="also capture with the home on a local S3 server (moto)")
    parser.add_argument("--child", choices=["capture", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.home, args.workers)
        return
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        home = FlywheelHome(tmp)
        t0 = time.perf_counter()
        counts = generate(home, args.events)
        files = landing_files(home, INTERACTIONS, DAY) + landing_files(home, FEEDBACK, DAY)
        size = sum(p.stat().st_size for p in files) / 2**20
        print(f"generated {counts} in {time.perf_counter() - t0:.1f}s: {len(files)} files, {size:,.0f} MiB")
        base = _in_subprocess("baseline", home, None)
        cap = _in_subprocess("capture", home, args.workers)
        n = counts["interactions"]
        print(f"baseline  DuckDB read_json -> Parquet: {base['seconds']:.1f}s  {n / base['seconds']:,.0f} events/s  "
              f"peak RSS {base['peak_rss_mib']:,.0f} MiB  rows {base['interactions_rows']}+{base['feedback_rows']}")  # fmt: skip
        # the workers run at once: their peaks add up at worst (ru_maxrss of children is the largest one's)
        total_rss = cap["peak_rss_mib"] + cap["workers"] * cap["worker_rss_mib"]  # type: ignore[operator]
        print(f"capture   ingest {cap['ingest_s']:.1f}s + signals {cap['signals_s']:.1f}s = {cap['seconds']:.1f}s  "
              f"{n / cap['seconds']:,.0f} events/s  peak RSS {cap['peak_rss_mib']:,.0f} MiB + {cap['workers']} ingest "
              f"workers x {cap['worker_rss_mib']:,.0f} MiB = {total_rss:,.0f} MiB at most")  # fmt: skip
        print(f"          read {cap['rows_read']} accepted {cap['rows_accepted']} quarantined {cap['rows_quarantined']} "
              f"pii {cap['pii_hits']} signals {cap['signals']} resubmissions {cap['resubmissions']}")  # fmt: skip
        ratio = cap["seconds"] / base["seconds"]  # type: ignore[operator]
        print(f"ratio capture/baseline: {ratio:.2f}x (target <= 5x); peak RSS target < 2048 MiB")
        print(f"CPU seconds: capture {cap['cpu_s']:.1f}, baseline {base['cpu_s']:.1f}: "
              f"{cap['cpu_s'] / base['cpu_s']:.2f}x (wall-clock ratios swing with other load on a shared machine)")  # type: ignore[operator]
        if args.s3:
            s3 = _capture_on_s3(home, args.workers)
            s3_ratio = s3["seconds"] / base["seconds"]  # type: ignore[operator]
            print(f"capture, home on S3 (moto on 127.0.0.1): ingest {s3['ingest_s']:.1f}s + signals {s3['signals_s']:.1f}s "
                  f"= {s3['seconds']:.1f}s  {n / s3['seconds']:,.0f} events/s; rows read {s3['rows_read']} accepted "
                  f"{s3['rows_accepted']} quarantined {s3['rows_quarantined']}")  # fmt: skip
            print(f"ratio capture on S3 / baseline (local DuckDB): {s3_ratio:.2f}x; local capture {ratio:.2f}x; "
                  f"S3 / local capture {s3['seconds'] / cap['seconds']:.2f}x")  # type: ignore[operator]
    if args.pii_compare:
        compare_pii(ner_models=args.ner_model)


if __name__ == "__main__":
    main()
