"""What the project already holds before a generation run: the seed examples (shown to generators) and the
real-side and generated-side row counts that bound a run by the real:synthetic ratio.

Counts are read from the files themselves (seed, synthetic and distilled files the project lists, the
weekly `reviewed_examples` tables, earlier `generated/<kind>/*.jsonl` runs), so a run needs no curation
output. They bound a run from above; curation's balance step and its `real_synthetic_ratio` rule remain
the final word on the dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from flywheel import formats
from flywheel.config import ProjectConfig
from flywheel.core.storage import FlywheelHome, parquet_file
from flywheel.core.text import final_answer, last_user_text
from flywheel.generation.runs import DISTILLED, SYNTHETIC
from flywheel.labeling.reviewed import REVIEWED_ASSET


def _ok_rows(paths: list[Path], max_tokens: int) -> list[list[dict[str, str]]]:
    """The usable rows' messages of example files (unreadable files count as empty)."""
    out = []
    for p in paths:
        try:
            report = formats.load_file(p, max_tokens=max_tokens)
        except (formats.FormatFileError, OSError):
            continue
        out += [r.messages for r in report.rows if r.ok and r.messages]
    return out


def seed_pairs(project: ProjectConfig) -> list[tuple[str, str]]:
    """(input, answer) of every usable seed example the project lists."""
    rows = _ok_rows([project.resolve(f) for f in project.sources.seed], project.curation.max_tokens)
    return [(last_user_text(m), final_answer(m)) for m in rows if last_user_text(m) and final_answer(m)]


def _lines(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


@dataclass(frozen=True)
class RatioRoom:
    """Real-side rows, generated-side rows and how many more generated rows the ratio allows."""

    real: int
    generated: int
    ratio: float

    @property
    def room(self) -> int:
        return max(0, math.floor(self.real * self.ratio) - self.generated)

    def describe(self) -> str:
        return (f"{self.real} real or human rows, {self.generated} generated already: at most 1:{self.ratio:g} "
                f"leaves room for {self.room}")


def ratio_room(project: ProjectConfig, home: FlywheelHome, kind: str, partition: str) -> RatioRoom:
    """The real:synthetic room for a run of `kind` writing `partition` (its own earlier file not counted)."""
    max_tokens = project.curation.max_tokens
    real = len(_ok_rows([project.resolve(f) for f in project.sources.seed], max_tokens))
    real += sum(parquet_file(f).metadata.num_rows for f in sorted(home.warehouse(REVIEWED_ASSET).glob("*.parquet")))
    listed = [*project.sources.synthetic, *project.sources.distilled]
    generated = len(_ok_rows([project.resolve(f) for f in listed], max_tokens))
    own = home.generated(kind, partition)
    for k in (SYNTHETIC, DISTILLED):
        generated += sum(_lines(f) for f in sorted(home.generated(k).glob("*.jsonl")) if f != own)
    return RatioRoom(real, generated, project.curation.max_synthetic_per_real)
