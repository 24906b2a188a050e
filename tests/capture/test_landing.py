"""Reading the landing zone: landing files cut into pieces at line ends; files a killed writer left."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.landing import landing_files, recover_orphans, split_landing_files
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome
from tests.capture.traffic import DAY, NEXT, interaction_record


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


def test_orphan_tmp_files_are_published_whole_and_counted(home: FlywheelHome) -> None:
    """A `.tmp` untouched for longer than the threshold is published (its cut last line then goes to
    quarantine at ingestion); a fresh one is a live writer's and stays; an empty old one is removed."""
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    rows = [json.dumps(interaction_record()) for _ in range(3)]
    orphan = folder / ".host-123-abc.jsonl.tmp"
    orphan.write_text("\n".join(rows) + "\n" + rows[0][:40])  # killed in the middle of a line
    live = folder / ".host-456-def.jsonl.tmp"
    live.write_text(rows[0] + "\n")
    empty = home.landing(FEEDBACK, NEXT) / ".host-123-ghi.jsonl.tmp"
    empty.parent.mkdir(parents=True)
    empty.touch()
    old = time.time() - 3_600
    for path in (orphan, empty):
        os.utime(path, (old, old))

    report = recover_orphans(home, older_than_s=600)
    published = folder / "host-123-abc.recovered.jsonl"
    assert report.recovered == [published] and (report.lines, report.partial_lines, report.removed_empty) == (
        4,
        1,
        1,
    )
    assert not orphan.exists() and live.exists() and not empty.exists()
    assert landing_files(home, INTERACTIONS, DAY) == [published]
    ingested = ingest_interactions(home, DAY, CaptureConfig())
    assert (ingested.rows_accepted, dict(ingested.quarantine_reasons)) == (3, {"invalid_json": 1})
    assert recover_orphans(home, older_than_s=600).recovered == []  # nothing left to do
    assert recover_orphans(home, older_than_s=0, days=[NEXT]).recovered == []  # only the days asked
