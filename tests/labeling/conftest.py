"""Fixtures of the labeling tests: a decision store on SQLite in the test's temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.labeling.store import ReviewStore


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    return ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
