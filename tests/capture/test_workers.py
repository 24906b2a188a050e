"""Ingestion in worker processes gives the same tables and report as in one process."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import Piece
from flywheel.capture.records import INTERACTIONS
from flywheel.capture.validation import RowRules
from flywheel.capture.workers import _PieceJob, _read_part, _validate_piece
from flywheel.config import CaptureConfig, PiiConfig
from flywheel.core.storage import FlywheelHome, read_parquet
from tests.capture.traffic import DAY, bad_lines, interaction_record


def test_worker_processes_give_the_same_tables_and_report(home: FlywheelHome) -> None:
    """Pieces of files validated in 2 processes: duplicates across pieces and files still go to the
    first row in file/line order, and the PII counted in a duplicate's texts is not counted."""
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    pii = interaction_record(
        messages=[{"role": "user", "content": "mail bob@corp.com, card 4111 1111 1111 1111"}]
    )
    bad = [line for line, _ in bad_lines()[:8]]
    a = [json.dumps(interaction_record(output=f"answer {i}")).encode() for i in range(60)]
    a[7], a[40], a[41] = json.dumps(pii).encode(), a[3], a[3]  # repeats in later pieces of the same file
    a[20:20] = [b"", *bad]
    b = [json.dumps(interaction_record()).encode() for _ in range(30)]
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


def test_rows_that_used_to_stop_the_run_are_quarantined_alike_in_workers(home: FlywheelHome) -> None:
    """Huge numbers, unhashable roles, surrogates, NUL, long ids, other days, garbage: in 2 processes
    the run succeeds with the same tables and report as in one."""
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    cases = bad_lines()
    lines = [json.dumps(interaction_record(output=f"answer {i}")).encode() for i in range(40)]
    for i, (line, _) in enumerate(cases):
        lines.insert(2 * i + 1, line)
    lines.insert(5, b"\xff\x00\xfe garbage")
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    config = CaptureConfig(max_field_chars=1000)
    one = ingest_interactions(home, DAY, config, workers=1, batch_rows=8)
    out, q = read_parquet(home.warehouse(INTERACTIONS, DAY)), read_parquet(home.quarantine(INTERACTIONS, DAY))
    two = ingest_interactions(home, DAY, config, workers=2, batch_rows=8, piece_bytes=3_000)
    assert read_parquet(home.warehouse(INTERACTIONS, DAY)).equals(out)
    assert read_parquet(home.quarantine(INTERACTIONS, DAY)).equals(q)
    assert two == one and two.conserved and (one.rows_accepted, one.rows_quarantined) == (40, len(cases) + 1)
    expected = Counter(reason for _, reason in cases) + Counter({"invalid_utf8": 1})
    assert one.quarantine_reasons == expected


def test_a_row_failing_in_a_worker_is_quarantined(
    home: FlywheelHome, tmp_path: Path, redactor_crashes_on_boom: None
) -> None:
    """The worker's own loop (run here in-process): a row whose redaction raises is quarantined as
    `unexpected:<Type>`, its batch's other rows kept with their line numbers."""
    path = tmp_path / "a.jsonl"
    rows = [interaction_record(output="BOOM" if i == 3 else f"answer {i}") for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{oops\n")
    piece = Piece(0, str(path), 0, path.stat().st_size, 1)
    job = _PieceJob(piece, str(tmp_path), 0, RowRules(DAY, 1000), PiiConfig(kinds=["email"]), 100, 1 << 20)
    result = _validate_piece(job)
    accepted, rejected = _read_part(result.accepted), _read_part(result.quarantined)
    assert result.rows_read == 7 and accepted.column("_line").to_pylist() == [1, 2, 3, 5, 6]
    assert [(r["line"], r["reason"]) for r in rejected.to_pylist()] == [
        (4, "unexpected:RuntimeError"), (7, "invalid_json"),
    ]  # fmt: skip
