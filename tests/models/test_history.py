"""The score history: rows per evaluation cycle, the promoted/rejected outcome, the plot and the table."""

from __future__ import annotations

from pathlib import Path

from flywheel.models import history, registry
from tests.models.registry_rows import record, summary


def test_score_history_and_plot(db: str, tmp_path: Path) -> None:
    record(db, "v1", True, 0.4)
    history.record_evaluation(db, summary("v1", "base:tiny", 0.4, 0.05), "promoted")
    registry.promote(db, "v1", by="gate", reason="passed")
    record(db, "v2", False, 0.3)
    history.record_evaluation(db, summary("v2", "v1", 0.3, 0.4), "blocked")
    rows = history.score_history(db, 1)
    assert [(r["cycle"], r["candidate"], r["outcome"]) for r in rows] == [(1, "v1", "promoted"), (2, "v2", "blocked")]
    assert rows[1]["slices"]["clean"] == {"candidate": 0.3, "champion": 0.4}
    assert history.score_history(db, 2) == []
    png = history.plot_score_history(rows, tmp_path / "plots" / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = history.plot_score_history([], tmp_path / "empty.png")
    assert empty.stat().st_size > 0
    table = history.score_history_markdown(rows).splitlines()
    assert table[0].startswith("| cycle | candidate | vs | chrf |") and len(table) == 4
    assert table[3] == "| 2 | v2 | v1 | 0.3000 | 0.4000 | -0.1000 [-0.1500, -0.0500] | blocked |"
