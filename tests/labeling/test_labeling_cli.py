"""`flywheel labeling ...` and `flywheel review` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from flywheel.labeling.store import ReviewStore
from tests.shared_data import DATASETS


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project_dir: Path) -> FlywheelHome:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLYWHEEL_PROJECT", str(project_dir))
    return FlywheelHome(tmp_path / "home")


def test_sample_export_import_close(env: FlywheelHome, tmp_path: Path) -> None:
    runner = CliRunner()
    src = DATASETS / "alpaca_llamafactory_demo.json"
    r = runner.invoke(app, ["labeling", "sample", "--source", str(src), "-n", "120", "--batch", "synth-1"])
    assert r.exit_code == 0, r.output
    store = ReviewStore(env.database_url())
    items = store.items("synth-1")
    assert len(items) == 120 and items[0]["kind"] == "sample"
    assert "Quality rubric (test project)" in store.batch("synth-1").rubric

    out = tmp_path / "export.jsonl"
    r = runner.invoke(app, ["labeling", "export", "--batch", "synth-1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    lines[0]["verdict"] = "pass"
    lines[1].update(verdict="fix")  # no text: the whole file is refused
    out.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = runner.invoke(app, ["labeling", "import", str(out), "--reviewer", "ann"])
    assert r.exit_code == 1 and "line 2" in r.output and "edited answer" in r.output
    assert store.decisions("synth-1") == []

    lines[1].update(text="A better answer.")
    out.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = runner.invoke(app, ["labeling", "import", str(out), "--reviewer", "ann"])
    assert r.exit_code == 0, r.output
    assert "applied 2 decisions" in r.output
    r = runner.invoke(app, ["labeling", "close", "--batch", "synth-1"])
    assert r.exit_code == 0 and "2 of 120" in r.output
    assert store.progress("synth-1").state == "closed"
    r = runner.invoke(app, ["labeling", "list"])
    assert "synth-1" in r.output and "closed" in r.output


def test_unknown_batch_is_a_clear_error(env: FlywheelHome) -> None:
    runner = CliRunner()
    for args in (["review", "--batch", "2020-01-06"], ["labeling", "export", "--batch", "nope"],
                 ["labeling", "close", "--batch", "nope"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "not found" in r.output, args
