"""`flywheel import` and `flywheel collect` on the command line (typer's runner, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from tests.capture.importers.helpers import landed
from tests.capture.test_collector import genai_span, payload


def test_import_prints_what_landed_and_fails_on_quarantined_rows(home: FlywheelHome, project_dir: Path,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(payload([genai_span(1), genai_span(2, content=False)])) + "\n", encoding="utf-8")
    args = ["import", "otlp", str(path), "--home", str(home.root), "--project", str(project_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())  # rich wraps long lines
    assert "1 interactions and 0 feedback events landed (2026-03-02)" in out
    assert "1 quarantined (no_content 1)" in out and "quarantine/imports/otlp" in out
    assert [r["interaction_id"] for r in landed(home)] == ["resp-1"]
    again = CliRunner().invoke(app, args)
    out = " ".join(again.output.split())
    assert "0 interactions" in out and "1 already landed" in out
    unknown = CliRunner().invoke(app, ["import", "splunk", str(path), "--home", str(home.root)])
    assert unknown.exit_code == 2 and "unknown import kind 'splunk'" in unknown.output


def test_collect_needs_a_token(home: FlywheelHome, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_COLLECTOR_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["collect", "--home", str(home.root)])
    assert result.exit_code == 2 and "FLYWHEEL_COLLECTOR_TOKEN" in result.output
