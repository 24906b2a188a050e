"""The project file: a wrong key or value is refused naming the file, the key (and line) and what was expected."""

from __future__ import annotations

import json
import time
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
    msg = _refusal(tmp_path, "training:\n  bf16: maybe\ncapture:\n  pii: {kinds: [email, shoe_size]}\n")
    assert "line 2, key 'training.bf16'" in msg and "'auto', 'on' or 'off'" in msg and "'maybe'" in msg
    assert "line 4, key 'capture.pii.kinds.1'" in msg and "'shoe_size'" in msg


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
    unusable = runner.invoke(app, ["check-config", str(tmp_path)])  # template rubric, empty eval set
    assert unusable.exit_code == 1 and "unedited template" in unusable.output
    (tmp_path / "rubric.md").write_text("# Rubric\nA perfect answer is short and right.\n", encoding="utf-8")
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             "slice": "s"} for i in range(100)]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ok = runner.invoke(app, ["check-config", str(tmp_path)])
    assert ok.exit_code == 0 and '"resubmit_window_s": 120' in ok.output, ok.output
    (tmp_path / "flywheel.yaml").write_text("capture:\n  resubmit_window_s: -5\n", encoding="utf-8")
    bad = runner.invoke(app, ["check-config", str(tmp_path)])
    assert bad.exit_code == 2
    assert "resubmit_window_s" in bad.output and "greater than 0" in bad.output


# --- values that cannot work (issue 11, finding 8): each refused with the file, the line and what was expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\nrubric: r.md\nname: b\n", "line 3: duplicate key 'name' (first at line 1)"),
        ("automation:\n  capture_cron: \"every day\"\n", "line 2, key 'automation.capture_cron'"),
        ("automation:\n  timezone: Mars/Olympus\n", "line 2, key 'automation.timezone': Value error, expected an IANA time zone"),
        ("start_date: not-a-date\n", "line 1, key 'start_date': Value error, expected a date YYYY-MM-DD"),
        ("evaluation:\n  min_items: 300\n  max_items: 200\n",
         "line 2, key 'evaluation.min_items': expected min_items <= max_items (got 300 > 200)"),
        ("curation:\n  answer_regex: \"(unclosed\"\n", "line 2, key 'curation.answer_regex': Value error, not a valid regular expression"),
        ("a: &x 1\nname: *x\n", "line 1: YAML anchor &x: anchors and aliases are not accepted"),
    ],
)
def test_check_config_refuses_what_cannot_work(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "flywheel.yaml").write_text(text, encoding="utf-8")
    r = CliRunner().invoke(app, ["check-config", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert expected in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output


def test_duplicate_keys_in_a_section(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "labeling:\n  batch_size: 10\n  seed: 1\n  batch_size: 20\n")
    assert "line 4: duplicate key 'batch_size' (first at line 2); each key may appear once" in msg


def test_yaml_alias_bomb_is_refused_within_a_second(tmp_path: Path) -> None:
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        bomb.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb.append("name: *g")
    start = time.perf_counter()
    msg = _refusal(tmp_path, "\n".join(bomb) + "\n")
    assert time.perf_counter() - start < 1.0
    assert "line 1: YAML anchor &a" in msg
    msg = _refusal(tmp_path, "name: *nowhere\n")  # an alias alone is refused too
    assert "line 1: YAML alias *nowhere" in msg


def test_too_deep_yaml_is_a_config_error(tmp_path: Path) -> None:
    assert "nested too deeply" in _refusal(tmp_path, "name: " + "[" * 20_000 + "]" * 20_000 + "\n")


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("every day", "this one has 2 field(s)"),
        ("0 7 * *", "this one has 4 field(s)"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 0 0 * *", "day of month: 0 is outside 1-31"),
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "minute: step '0'"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 L * *", "'L' is not a number"),
    ],
)
def test_invalid_cron_is_refused(tmp_path: Path, cron: str, reason: str) -> None:
    msg = _refusal(tmp_path, f"automation:\n  timezone: UTC\n  retrain_cron: \"{cron}\"\n")
    assert "line 3, key 'automation.retrain_cron'" in msg and reason in msg


def test_bounds_across_keys_are_checked(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "curation:\n  answer_min_chars: 50\n  answer_max_chars: 10\n")
    assert "line 2, key 'curation.answer_min_chars': expected answer_min_chars <= answer_max_chars (got 50 > 10)" in msg
    msg = _refusal(tmp_path, "evaluation:\n  metrics: [exact_match]\n  primary_metric: chrf\n")
    assert "line 3, key 'evaluation.primary_metric': 'chrf' is not computed: add it to evaluation.metrics" in msg
    msg = _refusal(tmp_path, "evaluation:\n  metrics: [chrf, judge]\n")
    assert "line 2, key 'evaluation.metrics': metric 'judge' needs evaluation.judge" in msg
    msg = _refusal(tmp_path, "labeling:\n  max_fix_chars: 2000000\n")
    assert "key 'labeling.max_request_bytes': expected at least 4 x (max_fix_chars + max_reason_chars)" in msg
    assert "key 'labeling.max_import_line_bytes'" in msg


def test_answer_json_schema_must_be_a_schema(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "curation:\n  answer_json_schema: {type: 12}\n")
    assert "line 2, key 'curation.answer_json_schema': Value error, not a valid JSON schema" in msg


def test_valid_schedules_zones_and_an_unquoted_date_load(tmp_path: Path) -> None:
    (tmp_path / "flywheel.yaml").write_text(
        "start_date: 2026-03-02\nautomation:\n  timezone: Europe/Paris\n  capture_cron: '@daily'\n"
        "  labeling_cron: '0 7 * * mon'\n  retrain_cron: '0 3 1 jan,apr,jul,oct *'\n", encoding="utf-8")
    cfg = load_project(tmp_path)
    assert cfg.start_date == "2026-03-02" and cfg.automation.timezone == "Europe/Paris"


def test_a_huge_wrong_value_is_shown_shortened(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "name: [" + ", ".join(["lol"] * 10_000) + "]\n")
    assert "key 'name': Input should be a valid string" in msg and len(msg) < 300
