"""Time of `flywheel erase` (`flywheel.ops.erasure.erase_user`) on a home the size of the demo's, or bigger.

    .venv/bin/python benchmarks/erasure.py [--weeks 2] [--per-day 60]

Builds a home the way the demo fills it: the demo scenario's simulated users (`simulate_requests`, ~400
users, `--per-day` requests a day, 5 traffic days a week) logged through the capture SDK with feedback,
captured day by day (`ingest_interactions`, `compute_signals`), each week's review batch selected,
registered, fully decided and turned into reviewed examples, and one dataset version built
(`build_training_dataset`). Then erases the user with the most interactions, twice, and prints the
seconds, the rows removed per store, and the size of the home beside the time of capturing it.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("FLYWHEEL_PSEUDONYM_KEY", "benchmark-only-pseudonym-key")

from flywheel.capture.ingestion import ingest_interactions  # noqa: E402
from flywheel.capture.sdk import CaptureWriter  # noqa: E402
from flywheel.capture.signals import compute_signals  # noqa: E402
from flywheel.config import load_project  # noqa: E402
from flywheel.core.records import examples_table  # noqa: E402
from flywheel.core.storage import FlywheelHome, write_parquet  # noqa: E402
from flywheel.curation.build import build_training_dataset  # noqa: E402
from flywheel.demo.scenario import ANSWERS, FULL, simulate_requests  # noqa: E402
from flywheel.labeling.batches import register_selection, write_batch_files  # noqa: E402
from flywheel.labeling.candidates import load_week_candidates  # noqa: E402
from flywheel.labeling.decisions import record_decision  # noqa: E402
from flywheel.labeling.reviewed import REVIEWED_ASSET, build_reviewed_examples  # noqa: E402
from flywheel.labeling.selection import select_batch  # noqa: E402
from flywheel.labeling.store import ReviewStore  # noqa: E402
from flywheel.ops.erasure import erase_user  # noqa: E402
from flywheel.project import init_project  # noqa: E402

FIRST_MONDAY = date(2026, 3, 2)


def build_home(root: Path, weeks: int, per_day: int) -> tuple[FlywheelHome, Path, str, int, float]:
    """(home, project, the busiest user, interactions logged, seconds to capture, label and curate)."""
    home = FlywheelHome(root / "home")
    project_dir = root / "project"
    init_project(project_dir)
    (project_dir / "rubric.md").write_text("# Rubric\n\nCorrect, complete answers in the requested format.\n")
    project = load_project(project_dir)
    size = FULL.__class__(traffic_per_day=per_day)
    rng = random.Random(5)
    users: dict[str, int] = {}
    days = [(FIRST_MONDAY + timedelta(days=7 * w + d)).isoformat() for w in range(weeks) for d in range(5)]
    with CaptureWriter(home) as w:
        for day in days:
            for req in simulate_requests(day, size):
                answer = ANSWERS.get(req.intent, "Sorry, I can only help with Nimbus Notes.")
                iid = w.log_interaction([{"role": "user", "content": req.text}], answer, session_id=req.session_id,
                                        user_id=req.user_id, model_version="champion-1", latency_ms=req.latency_ms,
                                        confidence=rng.random(), ts=req.ts, interaction_id=req.interaction_id)
                users[req.user_id] = users.get(req.user_id, 0) + 1
                if rng.random() < 0.3:
                    w.log_feedback(iid, rng.choice(["copy", "thumbs_up", "thumbs_down"]), ts=req.ts + timedelta(seconds=30))
    start = time.perf_counter()
    for day in days:
        ingest_interactions(home, day, project.capture)
        compute_signals(home, day, project.capture)
    db = home.database_url()
    store = ReviewStore(db)
    for week in range(weeks):
        batch = (FIRST_MONDAY + timedelta(days=7 * week)).isoformat()
        rows, _ = load_week_candidates(home, batch)
        ids, keys = store.reviewed_keys(exclude_batch=batch)
        selection = select_batch(batch, rows, project.labeling, weights=project.capture.signal_weights,
                                 reviewed_ids=ids, reviewed_inputs=keys)
        register_selection(store, selection, "rubric")
        write_batch_files(home, batch, selection.items)
        for k, item in enumerate(store.items(batch)):
            verdict = ("pass", "fix", "reject")[k % 3]
            record_decision(store, batch, item["item_id"], "bench", verdict,
                            text=f"fixed: {item['output']}" if verdict == "fix" else None)
        examples, _ = build_reviewed_examples(batch, store.items(batch), store.decisions(batch))
        write_parquet(examples_table(examples), home.warehouse(REVIEWED_ASSET, batch))
    build_training_dataset(project, home, db)
    busiest = max(users, key=lambda u: users[u])
    return home, project_dir, busiest, sum(users.values()), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--per-day", type=int, default=FULL.traffic_per_day)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home, project_dir, user, logged, build_s = build_home(Path(tmp), args.weeks, args.per_day)
        size = sum(p.stat().st_size for p in home.root.rglob("*") if p.is_file())
        print(f"home: {logged} interactions over {args.weeks} week(s), {size / 1e6:.1f} MB; "
              f"capture + labeling + curation took {build_s:.1f} s")
        config = load_project(project_dir).capture
        for run in ("first", "second"):
            start = time.perf_counter()
            report = erase_user(home, home.database_url(), config, user)
            seconds = time.perf_counter() - start
            print(f"{run} erase of the busiest user: {seconds:.2f} s, {report.total} rows in {len(report.files)} "
                  f"files: {dict(sorted(report.rows.items()))}")


if __name__ == "__main__":
    main()
