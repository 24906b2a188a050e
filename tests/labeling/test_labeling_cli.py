"""`flywheel labeling ...` and `flywheel review` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.core.storage import FlywheelHome
from flywheel.labeling.store import ReviewStore
from tests.labeling.traffic import WEEK, small_batch
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


GOOD = json.dumps({"batch_id": WEEK, "item_id": "i-1", "verdict": "pass"})
I2 = '{"batch_id": "' + WEEK + '", "item_id": "i-2", '  # the raw start of a line about item i-2
HOSTILE = {
    "surrogates": (I2 + '"verdict": "fix", "text": "\\udc80\\ud800"}',
                   "line 2: the fixed answer (text) contains a lone surrogate (U+DC80)"),
    "huge numbers": (I2 + '"verdict": "pass", "n": ' + "9" * 5000 + "}", "line 2: invalid JSON (a number with too many digits)"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "line 2: invalid JSON (nested too deeply)"),
    "NUL": (I2 + '"verdict": "fix", "text": "a\\u0000b"}', "line 2: the fixed answer (text) contains a NUL character at position 1"),
    "markup": ('{"batch_id": "[/]", "item_id": "i-2", "verdict": "pass"}', "line 2: batch '[/]' not found"),
    "a line over the limit": (I2 + '"text": "' + "x" * 5_000_000 + '"}',
                              "line 2: longer than 4,194,304 bytes (labeling.max_import_line_bytes)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_import_of_a_hostile_file_is_refused_whole(env: FlywheelHome, tmp_path: Path, case: str) -> None:
    """Issue 11: these printed tracebacks (or, for NUL, saved a fix PostgreSQL cannot hold)."""
    store = ReviewStore(env.database_url())
    small_batch(store, 4)
    line, expected = HOSTILE[case]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes((GOOD + "\n" + line + "\n" + GOOD.replace("i-1", "i-3") + "\n").encode("utf-8", "surrogatepass"))
    r = CliRunner().invoke(app, ["labeling", "import", str(path), "--reviewer", "ann"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "nothing applied" in r.output and expected in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output
    assert store.decisions(WEEK) == []


def test_import_of_100k_garbage_lines(env: FlywheelHome, tmp_path: Path) -> None:
    store = ReviewStore(env.database_url())
    small_batch(store, 4)
    path = tmp_path / "garbage.jsonl"
    with path.open("wb") as f:
        f.write(GOOD.encode() + b"\n")
        for k in range(100_000):
            f.write(b"\xff garbage %d {[\n" % k if k % 2 else b"%d, not json\n" % k)
    r = CliRunner().invoke(app, ["labeling", "import", str(path), "--reviewer", "ann"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    out = " ".join(r.output.split())
    assert "100000 bad line(s), nothing applied" in out and "line 2: invalid JSON" in out and "line 3: not UTF-8" in out
    assert "... and 99980 more" in out and "Traceback" not in r.output
    assert store.decisions(WEEK) == []


def test_import_limits_come_from_the_project(env: FlywheelHome, tmp_path: Path, project_dir: Path) -> None:
    text = (project_dir / "flywheel.yaml").read_text(encoding="utf-8")
    assert "\n  max_fix_chars: 20000" in text  # the starter file's default
    (project_dir / "flywheel.yaml").write_text(text.replace("\n  max_fix_chars: 20000", "\n  max_fix_chars: 10", 1))
    store = ReviewStore(env.database_url())
    small_batch(store, 4)
    path = tmp_path / "fix.jsonl"
    path.write_text(I2 + '"verdict": "fix", "text": "eleven char"}\n', encoding="utf-8")
    r = CliRunner().invoke(app, ["labeling", "import", str(path), "--reviewer", "ann"])
    assert r.exit_code == 1 and "is 11 characters long; at most 10 are accepted" in r.output, r.output
