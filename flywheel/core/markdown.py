"""Markdown tables for cards, reports and Dagster metadata: one builder, one escaping rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def markdown_cell(value: Any, limit: int | None = None) -> str:
    """A value as one table cell: None -> '', floats rounded to 4 places, pipes escaped, newlines as
    spaces, cut to `limit` characters with an ellipsis."""
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:.4g}" if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3) else f"{round(value, 4)}"
    else:
        text = str(value)
    text = " ".join(text.replace("|", "\\|").split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], limit: int | None = None) -> str:
    """A GitHub-flavoured markdown table; every cell goes through `markdown_cell`."""
    lines = ["| " + " | ".join(markdown_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(markdown_cell(v, limit) for v in row) + " |" for row in rows]
    return "\n".join(lines)
