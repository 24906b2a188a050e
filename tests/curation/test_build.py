"""`build_training_dataset`, the training_dataset asset's one library call (its Dagster tests:
tests/dagster/test_dataset_assets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import load_project
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome
from flywheel.curation.build import CurationError, build_training_dataset
from flywheel.project import template_text


def test_an_unwritten_rubric_refuses_before_reading_anything(project_dir: Path, home: FlywheelHome) -> None:
    (project_dir / "rubric.md").write_text(template_text("rubric.md"), encoding="utf-8")
    with pytest.raises(CurationError, match="refusing to build a training dataset: .*unedited template") as info:
        build_training_dataset(load_project(project_dir), home, "sqlite://")
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    assert not home.path("datasets").exists()
