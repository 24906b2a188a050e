"""The project file: a wrong key or value is refused naming the file, the key (and line) and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app
from flywheel.config import ConfigError, ProjectConfig, load_project, parse_project
from flywheel.project import init_project


def _refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "flywheel.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_project(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: ")
    return message


def test_out_of_range_value_names_file_line_key_and_bound(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "name: x\ncapture:\n  resubmit_similarity: 2\n")
    assert "line 3, key 'capture.resubmit_similarity'" in msg
    assert "less than or equal to 1" in msg and "(got 2)" in msg


def test_wrong_choice_names_the_allowed_values(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "training:\n  bf16: maybe\ncapture:\n  pii: {kinds: [email, ssn]}\n")
    assert "line 2, key 'training.bf16'" in msg and "'auto', 'on' or 'off'" in msg and "'maybe'" in msg
    assert "line 4, key 'capture.pii.kinds.1'" in msg and "'ssn'" in msg


def test_unknown_key_suggests_the_close_one_and_lists_the_section(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "capture:\n  resubmit_window: 30\ntrainin: {}\n")
    assert "line 2, key 'capture.resubmit_window': unknown key; did you mean 'resubmit_window_s'?" in msg
    assert "expected one of: resubmit_window_s, resubmit_similarity" in msg
    assert "line 3, key 'trainin': unknown key; did you mean 'training'?" in msg
    assert "root" not in msg.split("trainin")[1]  # the internal field is not offered


def test_unknown_key_in_an_optional_section(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "evaluation:\n  judge: {base_url: http://x/v1, model: m, api_kye: K}\n")
    assert "key 'evaluation.judge.api_kye'" in msg and "expected one of: base_url, model, api_key_env" in msg


def test_wrong_type_of_section_and_of_the_whole_file(tmp_path: Path) -> None:
    assert "key 'capture': Input should be a valid dictionary" in _refusal(tmp_path, "capture: [1, 2]\n")
    assert "expected a mapping of keys at the top level, got list" in _refusal(tmp_path, "- a\n- b\n")


def test_rule_across_keys_names_them_and_the_values(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "curation:\n  min_examples: 900\n")
    assert "key 'curation': expected min_examples <= target_examples <= ceiling_examples (got 900, 500, 20000)" in msg
    assert "{'curation'" not in msg  # not the whole input echoed back


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    assert "not valid YAML" in _refusal(tmp_path, "a: [\n")
    with pytest.raises(ConfigError, match="project file not found .*flywheel init"):
        load_project(tmp_path / "nowhere")


def test_empty_file_is_all_defaults_and_relative_paths_resolve_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "flywheel.yaml").write_text("", encoding="utf-8")
    cfg = load_project(tmp_path)
    assert cfg.capture.resubmit_window_s == 120 and cfg.root == tmp_path.resolve()
    assert cfg.resolve("rubric.md") == tmp_path.resolve() / "rubric.md"


def test_starter_file_shows_the_defaults(tmp_path: Path) -> None:
    """The starter flywheel.yaml says its values are the defaults: it must not drift from the models."""
    init_project(tmp_path)
    cfg = load_project(tmp_path)
    defaults = ProjectConfig(root=cfg.root)
    assert cfg.model_dump(exclude={"name"}) == defaults.model_dump(exclude={"name"})


def test_parse_project_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^inline: invalid project file\n  key 'labeling.batch_size'"):
        parse_project({"labeling": {"batch_size": 0}}, source="inline")


def test_check_config_command(tmp_path: Path) -> None:
    init_project(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["check-config", str(tmp_path)])
    assert ok.exit_code == 0 and '"resubmit_window_s": 120' in ok.output
    (tmp_path / "flywheel.yaml").write_text("capture:\n  resubmit_window_s: -5\n", encoding="utf-8")
    bad = runner.invoke(app, ["check-config", str(tmp_path)])
    assert bad.exit_code == 2
    assert "resubmit_window_s" in bad.output and "greater than 0" in bad.output
