"""Capture SDK: landing files published whole, many writers at once, and a light import."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import time
import uuid

import pytest

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import landing_files, recover_orphans
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.config import CaptureConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome
from tests.capture.traffic import DAY, log_question
from tests.shared_data import REPO


def test_writer_publishes_whole_files_only_on_flush(home: FlywheelHome) -> None:
    writer = CaptureWriter(home)
    iid = log_question(writer, "first")
    assert uuid.UUID(iid).version == 4
    assert landing_files(home, INTERACTIONS, DAY) == []  # still a hidden .tmp file
    assert [p.name[0] for p in home.landing(INTERACTIONS, DAY).iterdir()] == ["."]
    writer.log_feedback(iid, "thumbs_up", ts=f"{DAY}T10:00:05Z")
    writer.flush()
    files = landing_files(home, INTERACTIONS, DAY)
    assert len(files) == 1 and files[0].suffix == ".jsonl"
    record = json.loads(files[0].read_text())
    assert record["interaction_id"] == iid and record["messages"][1] == {"role": "user", "content": "first"}
    assert json.loads(landing_files(home, FEEDBACK, DAY)[0].read_text())["kind"] == "thumbs_up"
    assert not [p for p in home.landing(INTERACTIONS, DAY).iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="unknown feedback kind"):
        writer.log_feedback(iid, "love")


def test_writer_rolls_over_by_size_and_sorts_records_into_their_day(home: FlywheelHome) -> None:
    with CaptureWriter(home, max_records=3) as writer:
        for i in range(7):
            log_question(writer, f"q{i}")
        log_question(writer, "late", ts="2026-01-06T00:00:01+00:00")
        log_question(writer, "epoch", ts=1767571200.25)  # 2026-01-05T00:00:00.25Z
    assert [len(p.read_text().splitlines()) for p in landing_files(home, INTERACTIONS, DAY)].count(3) == 2
    assert sum(len(p.read_text().splitlines()) for p in landing_files(home, INTERACTIONS, DAY)) == 8
    assert len(landing_files(home, INTERACTIONS, "2026-01-06")) == 1


def _write_from_process(root: str, worker: int, n: int) -> None:
    with CaptureWriter(root, max_records=17) as writer:
        for i in range(n):
            log_question(writer, f"worker {worker} message {i}", session_id=f"w{worker}")


def test_many_processes_write_at_once_and_readers_never_see_half_a_file(home: FlywheelHome) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_from_process, args=(str(home.root), w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    seen_lines = 0
    while any(p.is_alive() for p in procs):  # read while they write: every visible file parses whole
        for path in landing_files(home, INTERACTIONS, DAY):
            lines = path.read_bytes().split(b"\n")
            assert lines[-1] == b""
            seen_lines = max(seen_lines, len([json.loads(line) for line in lines[:-1]]))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    files = landing_files(home, INTERACTIONS, DAY)
    names = {p.name.rsplit("-", 1)[0] for p in files}  # host-pid
    assert len(names) == 4
    report = ingest_interactions(home, DAY, CaptureConfig())
    assert report.rows_read == report.rows_accepted == 600


# modules a serving process must not pay for when it imports the SDK
HEAVY = {"pyarrow", "pandas", "duckdb", "numpy", "multiprocessing", "concurrent", "pydantic", "sqlalchemy",
         "yaml", "dagster", "rapidfuzz", "fsspec", "torch", "transformers"}  # fmt: skip
LIGHT_FLYWHEEL = {
    "flywheel",
    "flywheel.capture",
    "flywheel.capture.sdk",
    "flywheel.capture.records",
    "flywheel.core",
    "flywheel.core.errors",
    "flywheel.core.permissions",
}


def test_sdk_imports_only_the_standard_library() -> None:
    roots = sorted(HEAVY | {"flywheel"})
    code = (
        "import flywheel.capture.sdk, sys, json; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {roots!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert loaded <= LIGHT_FLYWHEEL


def test_writer_given_a_path_writes_where_the_home_reads(home: FlywheelHome) -> None:
    with CaptureWriter(str(home.root)) as writer:
        iid = log_question(writer, "by path")
    files = landing_files(home, INTERACTIONS, DAY)
    assert [json.loads(files[0].read_text())["interaction_id"]] == [iid]
    assert files[0].parent == home.landing(INTERACTIONS, DAY)


def test_feedback_errors_are_input_errors(home: FlywheelHome) -> None:
    writer = CaptureWriter(home)
    with pytest.raises(InputError, match="unknown feedback kind"):
        writer.log_feedback("x", "love")
    with pytest.raises(InputError, match="needs the corrected text"):
        writer.log_feedback("x", "correction")
    writer.close()


_KILLED_WRITER = """
import sys, time
from flywheel.capture.sdk import CaptureWriter
writer = CaptureWriter(sys.argv[1], max_age_s=1e9)
for i in range(40):
    writer.log_interaction([{"role": "user", "content": f"question {i} " + "x" * 300}], "answer " * 40,
                           session_id="s", user_id="u", model_version="m", latency_ms=1.0, ts=sys.argv[2])
print("logged", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_with_sigkill_loses_no_logged_record(home: FlywheelHome) -> None:
    """A serving process killed before publishing: its `.tmp` holds every record it logged (no user
    buffer), and the pipeline publishes it once it is old enough."""
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(home.root), f"{DAY}T10:00:00Z"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "logged"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and landing_files(home, INTERACTIONS, DAY) == []
    assert recover_orphans(home, older_than_s=600).recovered == []  # too fresh: could be a live writer
    report = recover_orphans(home, older_than_s=600, now=time.time() + 3_600)
    assert len(report.recovered) == 1 and (report.lines, report.partial_lines) == (40, 0)
    ingested = ingest_interactions(home, DAY, CaptureConfig())
    assert (ingested.rows_read, ingested.rows_accepted) == (40, 40)


def test_an_idle_writer_publishes_its_files_when_they_are_old_enough(home: FlywheelHome) -> None:
    """No log call after the first: the publisher thread still publishes at `max_age_s`, so a live
    writer's `.tmp` is never older than that (and orphan recovery never takes it)."""
    writer = CaptureWriter(home, max_age_s=0.5)
    log_question(writer, "anyone there?")
    assert landing_files(home, INTERACTIONS, DAY) == []
    deadline = time.monotonic() + 10
    while not landing_files(home, INTERACTIONS, DAY) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(landing_files(home, INTERACTIONS, DAY)) == 1
    writer.max_age_s = 3_600.0
    log_question(writer, "me again")  # a new file, a new publisher, a long wait
    publisher = writer._publisher
    writer.close()
    assert len(landing_files(home, INTERACTIONS, DAY)) == 2
    assert publisher is not None
    publisher.join(timeout=10)  # woken by close(): it ends at once, not at max_age_s
    assert not publisher.is_alive()


def test_a_writer_whose_file_was_recovered_goes_on(home: FlywheelHome) -> None:
    """Should recovery take the file of a writer that is still alive, its records stay in the
    published file and the writer does not fail."""
    writer = CaptureWriter(home)
    log_question(writer, "first")
    assert len(recover_orphans(home, older_than_s=0).recovered) == 1
    log_question(writer, "second")
    writer.close()
    (published,) = landing_files(home, INTERACTIONS, DAY)
    assert len(published.read_text().splitlines()) == 2


def test_a_lone_surrogate_is_logged_and_quarantined_not_raised(home: FlywheelHome) -> None:
    with CaptureWriter(home) as writer:
        log_question(writer, "broken \ud800 text")
        log_question(writer, "fine")
    report = ingest_interactions(home, DAY, CaptureConfig())
    assert (report.rows_accepted, dict(report.quarantine_reasons)) == (1, {"unencodable_text": 1})
