"""Reading the landing zone: landing files cut into pieces at line ends."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from flywheel.capture.landing import split_landing_files


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
