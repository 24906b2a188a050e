"""The shared dataset files under their short names, and small builders of rows for the formats tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.shared_data import ALPACA_DEMO, CHATML_TOY, SHAREGPT_DUMMY

TOY = CHATML_TOY
SHAREGPT_FILE = SHAREGPT_DUMMY
ALPACA_FILE = ALPACA_DEMO


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def conv(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]
