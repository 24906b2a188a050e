"""Ingestion in worker processes gives the same tables and report as in one process."""

from __future__ import annotations

import json

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.records import INTERACTIONS
from flywheel.config import CaptureConfig
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
