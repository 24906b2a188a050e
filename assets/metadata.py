"""Metadata values shared by the asset groups.

What the Dagster UI (1.13) shows without a click: text, numbers, paths, URLs, tables
(`MetadataValue.table`), and markdown under 1000 characters (the asset page renders it in place;
longer markdown sits behind "[Show Markdown]"). Images in markdown may be data URLs. So a PNG plot,
always longer than that, opens with one click (`png_metadata`); a plot that must be seen at a glance
is a small SVG whose markdown stays under the limit (`svg_metadata`).
"""

from __future__ import annotations

import base64

import dagster as dg

from flywheel.core.storage import StoragePath, storage_path
from flywheel.training.curves import svg_data_url

INLINE_MARKDOWN_CHARS = 1000  # dagster-webserver renders markdown metadata in place below this length


def png_metadata(png: str | StoragePath, alt: str) -> dg.MetadataValue:
    """A PNG as a data URI (the UI needs no file access; it opens with one click) followed by its path."""
    png = storage_path(png)
    if not png.is_file():
        return dg.MetadataValue.md(f"(no {alt} plot)")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})\n\n`{png}`")


def svg_metadata(svg: str | None, alt: str) -> dg.MetadataValue:
    """A small SVG as a markdown image the asset page shows in place (under INLINE_MARKDOWN_CHARS)."""
    text = f"![{alt}]({svg_data_url(svg)})" if svg else ""
    if not text or len(text) >= INLINE_MARKDOWN_CHARS:
        return dg.MetadataValue.md(f"(no inline {alt})")
    return dg.MetadataValue.md(text)
