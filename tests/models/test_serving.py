"""The champion's serving export: champion.json, serving.md, the vLLM command and its adapter checks."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.core.storage import FlywheelHome
from flywheel.models import registry, serving
from tests.models.registry_rows import record


def test_serving_export(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    record(db, "v1", True, 0.7)
    rec = registry.promote(db, "v1", by="gate", reason="passed")
    info = serving.write_serving_export(home, rec, lora_name="support-bot")
    saved = json.loads(home.model("champion.json").read_text())
    assert saved["version"] == "v1" and saved["path"] == "/models/v1"  # outside the home: absolute
    expected = f"vllm serve {home.model('base-tiny')} --enable-lora --lora-modules support-bot=/models/v1"
    assert info["vllm_command"] == expected
    assert expected in (home.reports() / "serving.md").read_text()
    # a later export (manual promotion, rollback) keeps the name clients use
    again = serving.write_serving_export(home, rec)
    assert again["lora_name"] == "support-bot"


def test_serving_export_checks_the_adapter_config_for_vllm(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    adapter = tmp_path / "adapters" / "v1"
    adapter.mkdir(parents=True)
    config = {"base_model_name_or_path": "Qwen/Qwen2.5-0.5B", "r": 64, "lora_alpha": 128, "bias": "none",
              "target_modules": ["q_proj", "v_proj"], "modules_to_save": None, "use_dora": False}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    registry.record_candidate(
        db, "v1", dataset_version="ds1", base_model="Qwen/Qwen2.5-0.5B", adapter_path=str(adapter),
        eval_set_hash="h1", eval_set_version=1, scores={}, gate_passed=True, gate_reasons=["passed"])
    rec = registry.promote(db, "v1", by="gate", reason="passed")
    info = serving.write_serving_export(home, rec, lora_name="bot")
    # rank 64 is above vLLM's default --max-lora-rank 16: the command says so
    assert info["vllm_command"] == (
        f"vllm serve Qwen/Qwen2.5-0.5B --enable-lora --max-lora-rank 64 --lora-modules bot={adapter}")
    assert info["warnings"] == []
    assert [serving.vllm_max_lora_rank(r) for r in (8, 16, 17, 48, 320)] == [None, None, 32, 64, 320]

    # modules_to_save (embeddings / lm_head trained in full) is refused by most vLLM versions: warned
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "r": 16, "modules_to_save": ["lm_head"]}))
    info = serving.write_serving_export(home, rec)
    assert "--max-lora-rank" not in info["vllm_command"]
    assert len(info["warnings"]) == 1 and "modules_to_save ['lm_head']" in info["warnings"][0]
    assert "**Warning:** modules_to_save" in (home.reports() / "serving.md").read_text()
    assert serving.vllm_adapter_warnings({**config, "use_dora": True, "bias": "all", "r": None})[:2] == [
        "adapter_config.json has no r", "use_dora is set: vLLM does not serve DoRA adapters"]


def test_a_moved_home_still_serves_its_champion(tmp_path: Path) -> None:
    """Pointers, the registry and the export store paths relative to the home: copy the home elsewhere and the
    champion's adapter is found there, and the vLLM line names the new place."""
    import shutil

    from flywheel.models.artifact import read_artifact

    old = FlywheelHome(tmp_path / "old")
    adapter = old.model("v1")
    adapter.mkdir(parents=True)
    config = {"base_model_name_or_path": "Qwen/Qwen2.5-0.5B", "r": 8, "lora_alpha": 16, "bias": "none",
              "target_modules": ["q_proj", "v_proj"], "modules_to_save": None, "use_dora": False}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    (adapter / "manifest.json").write_text(json.dumps({"version": "v1", "files": {}}))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    registry.record_candidate(
        db, "v1", dataset_version="ds1", base_model="Qwen/Qwen2.5-0.5B", adapter_path=old.relative(adapter),
        eval_set_hash="h1", eval_set_version=1, scores={}, gate_passed=True, gate_reasons=["passed"])
    rec = registry.promote(db, "v1", by="gate", reason="passed")
    assert rec.adapter_path == "models/v1"
    assert serving.write_serving_export(old, rec)["path"] == "models/v1"

    shutil.copytree(old.root, tmp_path / "new")
    shutil.rmtree(old.root)
    new = FlywheelHome(tmp_path / "new")
    assert read_artifact(new, "v1", rec.adapter_path).path == new.model("v1")
    info = serving.write_serving_export(new, rec, lora_name="bot")
    assert info["path"] == "models/v1" and info["warnings"] == []
    assert info["vllm_command"].endswith(f"--lora-modules bot={new.model('v1')}")
    # a model outside the home stays absolute
    assert new.relative(tmp_path / "elsewhere" / "v2") == str((tmp_path / "elsewhere" / "v2").resolve())
