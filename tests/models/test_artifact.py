"""The model artifact: version folders, the one adapter integrity check, the candidate pointer."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from flywheel.core.storage import FlywheelHome, write_json
from flywheel.models.artifact import AdapterError, load_adapter, read_artifact, read_candidate, verify_adapter
from tests.models.artifacts import install_model, random_adapter


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adapter")
    return random_adapter(FlywheelHome(root / "home"), root / "lora")


def test_adapter_differing_from_manifest_checksum_is_refused(adapter: Path, tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    target = install_model(home, "vsum", adapter)
    weights = target / "adapter_model.safetensors"
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"] = {"adapter_model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    write_json(manifest, target / "manifest.json")
    verify_adapter(target)  # intact
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # a flipped byte in the tensor data still parses as safetensors
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterError, match=r"adapter_model.safetensors: corrupted \(sha256"):
        load_adapter(read_candidate(home), home)


def test_hidden_temp_folder_is_never_a_model_version(adapter: Path, tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    tmp = home.model(".v9.abc.tmp")
    shutil.copytree(adapter, tmp)
    write_json({"version": "v9", "path": str(tmp)}, home.model("candidate.json"))
    with pytest.raises(AdapterError, match="temporary folder"):
        read_candidate(home)
    with pytest.raises(AdapterError, match="manifest.json: missing"):
        read_artifact(home, "v9")
