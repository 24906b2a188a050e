"""Capture SDK (landing files, many writers) and ingestion (validation, quarantine, PII, duplicates)."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

import assets.capture as capture_assets
from assets.capture import (
    interaction_signals,
    interactions,
    interactions_quarantine_rate,
    interactions_rows_conserved,
)
from assets.resources import FlywheelResource
from flywheel.capture.ingestion import (
    FEEDBACK,
    INTERACTIONS,
    INTERACTIONS_SCHEMA,
    QUARANTINE_SCHEMA,
    CaptureWriter,
    ingest_interactions,
    landing_files,
    parse_ts_us,
    split_landing_files,
)
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome, read_parquet
from tests.shared_data import DATASETS

DAY = "2026-01-05"


def _log(writer: CaptureWriter, text: str, ts: str = f"{DAY}T10:00:00Z", **kw: object) -> str:
    return writer.log_interaction(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        f"answer to {text}",
        session_id=str(kw.pop("session_id", "s1")),
        user_id="u1",
        model_version="m1",
        latency_ms=12.5,
        ts=ts,
        **kw,  # type: ignore[arg-type]
    )


def _record(**overrides: object) -> dict:
    rec = {
        "interaction_id": str(uuid.uuid4()),
        "ts": f"{DAY}T08:00:00Z",
        "session_id": "s",
        "user_id": "u",
        "model_version": "m1",
        "messages": [{"role": "user", "content": "hello"}],
        "output": "hi",
        "latency_ms": 3,
        "confidence": 0.5,
        "metadata": {"app": "web"},
    }
    rec.update(overrides)
    return {k: v for k, v in rec.items() if v is not ...}


# --- SDK -------------------------------------------------------------------------------------------
def test_writer_publishes_whole_files_only_on_flush(home: FlywheelHome) -> None:
    writer = CaptureWriter(home)
    iid = _log(writer, "first")
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
            _log(writer, f"q{i}")
        _log(writer, "late", ts="2026-01-06T00:00:01+00:00")
        _log(writer, "epoch", ts=1767571200.25)  # 2026-01-05T00:00:00.25Z
    assert [len(p.read_text().splitlines()) for p in landing_files(home, INTERACTIONS, DAY)].count(3) == 2
    assert sum(len(p.read_text().splitlines()) for p in landing_files(home, INTERACTIONS, DAY)) == 8
    assert len(landing_files(home, INTERACTIONS, "2026-01-06")) == 1


def _write_from_process(root: str, worker: int, n: int) -> None:
    with CaptureWriter(root, max_records=17) as writer:
        for i in range(n):
            _log(writer, f"worker {worker} message {i}", session_id=f"w{worker}")


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


# --- ingestion -------------------------------------------------------------------------------------
def _bad_lines() -> list[tuple[bytes, str]]:
    """(line, expected quarantine reason) for each kind of bad input."""
    huge = "x" * 2000
    return [
        (b"{not json", "invalid_json"),
        (b'{"interaction_id": "a", "ts": "2026-01-05T08:00:00Z", "text": "caf\xe9"}', "invalid_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (json.dumps(_record(interaction_id=...)).encode(), "missing_id"),
        (json.dumps(_record(interaction_id="  ")).encode(), "missing_id"),
        (json.dumps(_record(interaction_id=42)).encode(), "wrong_type"),
        (json.dumps(_record(ts="yesterday")).encode(), "bad_timestamp"),
        (json.dumps(_record(ts="2026-01-05T08:00:00")).encode(), "bad_timestamp"),  # no offset
        (json.dumps(_record(ts=1.7e12)).encode(), "bad_timestamp"),  # milliseconds, not seconds
        (json.dumps(_record(ts=True)).encode(), "bad_timestamp"),
        (json.dumps(_record(session_id=...)).encode(), "missing_field"),
        (json.dumps(_record(messages="hello")).encode(), "bad_messages"),
        (json.dumps(_record(messages=[{"role": "assistant", "content": "only me"}])).encode(), "bad_messages"),
        (json.dumps(_record(messages=[{"role": "wizard", "content": "x"}])).encode(), "bad_messages"),
        (json.dumps(_record(messages=[{"role": "user", "content": 5}])).encode(), "bad_messages"),
        (json.dumps(_record(output=None)).encode(), "missing_field"),
        (json.dumps(_record(latency_ms="fast")).encode(), "wrong_type"),
        (json.dumps(_record(confidence=1.5)).encode(), "out_of_range"),
        (json.dumps(_record(metadata=[1])).encode(), "wrong_type"),
        (json.dumps(_record(output=huge)).encode(), "huge_field"),
        (json.dumps(_record(messages=[{"role": "user", "content": huge}])).encode(), "huge_field"),
        (b"[" * 5_000, "invalid_json"),  # nested too deeply for the parser
    ]


def test_bad_rows_are_quarantined_with_reasons_and_counts_are_conserved(home: FlywheelHome) -> None:
    cases = _bad_lines()
    good = [_record(), _record(ts=1767600000), _record(confidence=None, metadata=...)]
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    lines = [json.dumps(g).encode() for g in good[:2]] + [b"", b"   "] + [line for line, _ in cases] + [json.dumps(good[2]).encode()]
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / ".in-progress.jsonl.tmp").write_bytes(b"{half a rec")  # never read

    report = ingest_interactions(home, DAY, CaptureConfig(max_field_chars=1000))
    assert report.rows_read == len(cases) + 3 and report.blank_lines == 2
    assert report.rows_accepted == 3 and report.rows_quarantined == len(cases) and report.conserved

    q = read_parquet(home.quarantine(INTERACTIONS, DAY))
    assert q.schema == QUARANTINE_SCHEMA
    got = {(row["line"], row["reason"]) for row in q.to_pylist()}
    assert got == {(i + 5, reason) for i, (_, reason) in enumerate(cases)}
    utf8 = next(r for r in q.to_pylist() if r["reason"] == "invalid_utf8")
    assert "\\xe9" in utf8["raw"] and utf8["source_file"].endswith("a.jsonl")
    assert all(r["detail"].startswith(f"a.jsonl:{r['line']}: ") for r in q.to_pylist())

    out = pq.read_table(home.warehouse(INTERACTIONS, DAY))
    assert out.schema == INTERACTIONS_SCHEMA
    rows = out.to_pylist()
    assert [r["metadata"] for r in rows] == ['{"app":"web"}', '{"app":"web"}', "{}"]
    assert rows[1]["ts"].timestamp() == 1767600000 and rows[2]["confidence"] is None


def test_duplicates_pii_and_rerun_replacing_output(home: FlywheelHome) -> None:
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    dup = _record(
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "mail me at bob@corp.com"},
                  {"role": "assistant", "content": "ok"}, {"role": "user", "content": "my card is 4111 1111 1111 1111"}],
        output="Your IP is 10.1.2.3", metadata={"contact": "+1 415-555-0134"},
    )  # fmt: skip
    (folder / "a.jsonl").write_text(json.dumps(dup) + "\n" + json.dumps(_record()) + "\n")
    (folder / "b.jsonl").write_text(json.dumps(dup) + "\n")

    report = ingest_interactions(home, DAY, CaptureConfig())
    assert (report.rows_read, report.rows_accepted, dict(report.quarantine_reasons)) == (3, 2, {"duplicate_id": 1})
    assert report.pii_hits == {"email": 1, "card": 1, "ip": 1, "phone": 1}
    q = read_parquet(home.quarantine(INTERACTIONS, DAY)).to_pylist()
    assert q[0]["source_file"].endswith("b.jsonl") and "already seen at a.jsonl:1" in q[0]["detail"]
    first = read_parquet(home.warehouse(INTERACTIONS, DAY)).to_pylist()[0]
    assert [m["content"] for m in first["messages"]] == ["sys", "mail me at [EMAIL]", "ok", "my card is [CARD]"]
    assert first["input_text"] == "my card is [CARD]" and first["output"] == "Your IP is [IP]"
    assert first["metadata"] == '{"contact":"[PHONE]"}'

    (folder / "c.jsonl").write_text(json.dumps(_record()) + "\n")
    again = ingest_interactions(home, DAY, CaptureConfig(pii={"enabled": False}))
    assert again.rows_accepted == 3 and not again.pii_hits
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).num_rows == 3
    assert sorted(p.name for p in home.warehouse(INTERACTIONS).iterdir()) == [f"{DAY}.parquet"]


def test_small_batches_give_the_same_table(home: FlywheelHome) -> None:
    with CaptureWriter(home) as writer:
        for i in range(50):
            _log(writer, f"question {i} from a{i}@x.org", session_id=f"s{i % 7}", confidence=i / 50)
    ingest_interactions(home, DAY, CaptureConfig())
    whole = read_parquet(home.warehouse(INTERACTIONS, DAY))
    ingest_interactions(home, DAY, CaptureConfig(), batch_rows=7)
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).equals(whole)
    assert whole.num_rows == 50 and whole.column("input_text")[3].as_py() == "question 3 from [EMAIL]"


def test_split_landing_files_cuts_at_line_ends_and_numbers_lines(tmp_path: Path) -> None:
    lines = [b"a" * 30, b"", b"b" * 5, b"c" * 200, b"d" * 10, b"e"]  # no newline after the last line
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\n".join(lines))
    pieces = list(split_landing_files([path, path], piece_bytes=40))
    assert [(p.file_index, p.first_line) for p in pieces] == [(0, 1), (0, 4), (0, 5), (1, 1), (1, 4), (1, 5)]
    assert pieces[1].end - pieces[1].start == 201  # a line longer than a piece is a piece of its own
    for index in (0, 1):
        mine = [p for p in pieces if p.file_index == index]
        assert mine[0].start == 0 and mine[-1].end == path.stat().st_size
        assert all(a.end == b.start for a, b in zip(mine, mine[1:], strict=False))
    counts: Counter[str] = Counter()
    got = [(item.line, item.raw) for p in pieces if p.file_index == 0 for item in p.lines(counts)]
    assert got == [(i + 1, raw) for i, raw in enumerate(lines) if raw]
    assert counts["blank_lines"] == 1


def test_worker_processes_give_the_same_tables_and_report(home: FlywheelHome) -> None:
    """Pieces of files validated in 2 processes: duplicates across pieces and files still go to the
    first row in file/line order, and the PII counted in a duplicate's texts is not counted."""
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    pii = _record(messages=[{"role": "user", "content": "mail bob@corp.com, card 4111 1111 1111 1111"}])
    bad = [line for line, _ in _bad_lines()[:8]]
    a = [json.dumps(_record(output=f"answer {i}")).encode() for i in range(60)]
    a[7], a[40], a[41] = json.dumps(pii).encode(), a[3], a[3]  # repeats in later pieces of the same file
    a[20:20] = [b"", *bad]
    b = [json.dumps(_record()).encode() for _ in range(30)]
    b[2], b[25] = json.dumps(pii).encode(), a[10]
    (folder / "a.jsonl").write_bytes(b"\n".join(a) + b"\n")
    (folder / "b.jsonl").write_bytes(b"\n".join(b))

    one = ingest_interactions(home, DAY, CaptureConfig(), workers=1, batch_rows=16)
    out = read_parquet(home.warehouse(INTERACTIONS, DAY))
    q = read_parquet(home.quarantine(INTERACTIONS, DAY))
    assert dict(one.quarantine_reasons)["duplicate_id"] == 4 and one.pii_hits == {"email": 1, "card": 1}
    two = ingest_interactions(home, DAY, CaptureConfig(), workers=2, batch_rows=16, piece_bytes=2_000)
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).equals(out)
    assert read_parquet(home.quarantine(INTERACTIONS, DAY)).equals(q)
    assert two == one and two.conserved
    assert [p.name for p in home.warehouse(INTERACTIONS).iterdir()] == [f"{DAY}.parquet"]  # no parts left


def test_empty_day_writes_empty_tables(home: FlywheelHome) -> None:
    report = ingest_interactions(home, DAY, CaptureConfig())
    assert (report.files, report.rows_read, report.quarantine_rate) == (0, 0, 0.0)
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).num_rows == 0


def test_timestamps() -> None:
    assert parse_ts_us("1970-01-01T00:00:01.5Z") == 1_500_000
    assert parse_ts_us("1970-01-01T01:00:00+01:00") == 0
    assert parse_ts_us(2) == 2_000_000


# --- Dagster ---------------------------------------------------------------------------------------
def test_capture_assets_and_checks_on_real_chatml_rows(home: FlywheelHome, project_dir: Path) -> None:
    """The OpenAI cookbook's toy ChatML file as traffic: one conversation has no user turn."""
    rows = [json.loads(line) for line in (DATASETS / "chatml_openai_toy.jsonl").read_text().splitlines() if line.strip()]
    with CaptureWriter(home) as writer:
        for i, row in enumerate(rows):
            prompt, answer = row["messages"][:-1], row["messages"][-1]["content"]
            iid = writer.log_interaction(prompt, answer, session_id=f"s{i}", user_id="u", model_version="m0",
                                         latency_ms=100 + i, ts=f"{DAY}T09:0{i}:00Z")  # fmt: skip
            writer.log_feedback(iid, "copy", ts=f"{DAY}T09:0{i}:30Z")
    resources = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))}
    result = dg.materialize(
        [interactions, interaction_signals, interactions_rows_conserved, interactions_quarantine_rate],
        partition_key=DAY,
        resources=resources,
    )
    assert result.success
    meta = result.asset_materializations_for_node("interactions")[0].metadata
    assert meta["rows_read"].value == len(rows) == meta["rows_accepted"].value + meta["rows_quarantined"].value
    assert meta["quarantine_reasons"].value == {"bad_messages": 1}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["interactions_rows_conserved"].passed
    assert not checks["interactions_quarantine_rate"].passed  # 1 of 5 > 5%: a warning, the run goes on
    assert checks["interactions_quarantine_rate"].severity == dg.AssetCheckSeverity.WARN
    signals = read_parquet(home.warehouse("interaction_signals", DAY))
    assert signals.num_rows == len(rows) - 1 and set(signals.column("signal").to_pylist()) == {"positive"}


def test_rows_conserved_check_counts_the_written_files(
    home: FlywheelHome, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocking check opens the day's warehouse and quarantine files: a row lost on disk fails it."""
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("\n".join([json.dumps(_record()), json.dumps(_record()), "{oops"]) + "\n")
    resources = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))}
    first = dg.materialize([interactions, interactions_rows_conserved], partition_key=DAY, resources=resources)
    check = first.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["rows_in_warehouse"].value == 2
    assert check.metadata["rows_in_quarantine"].value == 1

    def ingest_then_lose_a_row(*args: object, **kwargs: object) -> object:
        report = ingest_interactions(*args, **kwargs)  # type: ignore[arg-type]
        table = pq.read_table(home.warehouse(INTERACTIONS, DAY))
        pq.write_table(table.slice(0, 1), home.warehouse(INTERACTIONS, DAY))
        return report

    monkeypatch.setattr(capture_assets, "ingest_interactions", ingest_then_lose_a_row)
    again = dg.materialize([interactions, interactions_rows_conserved], partition_key=DAY, resources=resources,
                           raise_on_error=False)  # fmt: skip
    check = again.get_asset_check_evaluations()[0]
    assert not check.passed and "read 3 rows but the files hold 1 accepted + 1 quarantined" in (check.description or "")
