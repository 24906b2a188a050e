"""Metadata values shared by the asset groups."""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg


def png_metadata(png: str | Path, alt: str) -> dg.MetadataValue:
    """A PNG inline (a data URI, so the UI shows it without file access) followed by its path."""
    png = Path(png)
    if not png.is_file():
        return dg.MetadataValue.md(f"(no {alt} plot)")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})\n\n`{png}`")
