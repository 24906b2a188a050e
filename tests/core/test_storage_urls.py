"""FLYWHEEL_HOME as a URL: file:// is a local path; object-store URLs are refused until they are supported,
instead of a local folder named `s3:` appearing in the working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome


def test_file_url_is_a_local_path(tmp_path: Path) -> None:
    assert FlywheelHome(f"file://{tmp_path}/home").root == tmp_path / "home"


@pytest.mark.parametrize("url", ["s3://bucket/home", "gs://bucket/home", "az://container/home", "S3://b/h"])
def test_object_store_urls_are_refused_clearly(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"homes are not supported yet"):
        FlywheelHome(url)
    monkeypatch.setenv("FLYWHEEL_HOME", url)
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code != 0 and "not supported yet" in " ".join(result.output.split())
    assert os.listdir(tmp_path) == []  # nothing created locally
