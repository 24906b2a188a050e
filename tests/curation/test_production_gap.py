"""Production gap: the input-length picture of the dataset card (train vs production)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flywheel.curation.production_gap import input_length_histogram, length_shares, production_gap

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_length_shares_bins_and_overflow() -> None:
    shares = length_shares(["", "one", "one two", "a b c d e f g h", "x " * 100], max_words=5)
    assert len(shares) == 6 and np.isclose(shares.sum(), 1.0)
    assert shares.tolist() == [0.2, 0.2, 0.2, 0.0, 0.0, 0.4]  # 8 and 100 words land in the "5+" bin


def test_histogram_png_with_and_without_production(tmp_path: Path) -> None:
    train = [f"How do I change the billing address on invoice number {i}?" for i in range(50)]
    prod = [f"chnage adress pls {i}" for i in range(80)]
    both = input_length_histogram(train, prod, tmp_path / "both.png")
    alone = input_length_histogram(train, [], tmp_path / "alone.png")
    assert both.read_bytes()[:8] == PNG_MAGIC and alone.read_bytes()[:8] == PNG_MAGIC
    assert both.read_bytes() != alone.read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically, no temp left


def test_gap_reports_median_lengths_and_undercovered_kinds() -> None:
    train = [f"How do I change the billing address on invoice number {i}?" for i in range(50)]
    prod = [f"chnage adress pls {i}" for i in range(80)]
    gap = production_gap(train, prod, vocabulary={"how", "do", "change", "the", "billing", "address", "on", "invoice", "number"})
    assert gap["median_words"] == {"production": 4.0, "training": 11.0}
    assert gap["length_ks"] == 1.0 and {"short", "lower_case", "typo_laden"} <= set(gap["underrepresented_kinds"])
