"""Review candidates: the week's interactions with their signals, the queue each belongs to, its input key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome, duckdb_connection
from flywheel.core.text import input_match_key, user_text

# the review queues of a weekly batch, in priority order (control: a sample of the rest)
KINDS: tuple[str, ...] = ("correction", "negative", "low_confidence", "control")


def week_days(week: str) -> list[str]:
    """The seven daily partition keys of a weekly key (the Monday)."""
    start = date.fromisoformat(week)
    if start.weekday() != 0:
        raise InputError(f"weekly partition key {week!r} is not a Monday")
    return [(start + timedelta(days=i)).isoformat() for i in range(7)]


def load_week_candidates(home: FlywheelHome, week: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The week's interactions with their signal (none when no signal row), read with DuckDB.

    Returns the rows (oldest first) and counts: days found, interactions, signal rows.
    """
    days = week_days(week)
    i_files = [str(p) for p in home.warehouse_files("interactions", days)]
    s_files = [str(p) for p in home.warehouse_files("interaction_signals", days)]
    counts = {"days_with_interactions": len(i_files), "days_with_signals": len(s_files), "interactions": 0}
    if not i_files:
        return [], counts
    con = duckdb_connection(home=home)
    try:
        signals = (
            "SELECT * FROM read_parquet(?, union_by_name = true) "
            "QUALIFY row_number() OVER (PARTITION BY interaction_id ORDER BY ts DESC) = 1"
            if s_files
            else "SELECT NULL::VARCHAR AS interaction_id, NULL::VARCHAR AS signal, NULL::DOUBLE AS weight, "
            "NULL::VARCHAR AS correction_text, NULL::VARCHAR AS evidence WHERE false"
        )
        sql = f"""
            SELECT i.interaction_id, strftime(i.ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS ts, i.session_id,
                   i.model_version, i.messages, i.input_text, i.output, i.confidence,
                   coalesce(s.signal, 'none') AS signal, s.weight, s.correction_text, s.evidence
            FROM read_parquet(?, union_by_name = true) AS i
            LEFT JOIN ({signals}) AS s USING (interaction_id)
            ORDER BY i.ts, i.interaction_id
        """
        params: list[Any] = [i_files, s_files] if s_files else [i_files]
        con.execute("SET TimeZone = 'UTC'")
        table = con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()
    rows = table.to_pylist()
    counts["interactions"] = len(rows)
    counts["signal_rows"] = sum(1 for r in rows if r["weight"] is not None or r["signal"] != "none")
    return rows, counts


def input_key(messages: Sequence[dict[str, str]] | None, fallback: str = "") -> str:
    """The key near-identical inputs share: `input_match_key` of every user turn (else of `fallback`)."""
    return input_match_key(user_text(messages) or fallback)


def candidate_kind(row: dict[str, Any], low_confidence_threshold: float) -> str:
    """Which queue an interaction belongs to: correction, negative, low_confidence or control."""
    if row.get("signal") == "correction":
        return "correction"
    if row.get("signal") == "negative":
        return "negative"
    conf = row.get("confidence")
    if conf is not None and conf == conf and conf < low_confidence_threshold:  # conf == conf: not NaN
        return "low_confidence"
    return "control"
