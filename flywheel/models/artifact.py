"""The model artifact: a trained LoRA version on disk, its version id, its integrity, its pointer.

- `model_version_id`: the content id a training run computes *before* training (dataset version,
  training config, base model, eval-set hash): the same inputs give the same id.
- `eval_set_hash`: the content hash of the fixed eval set that id (and the registry's frozen eval
  sets) refer to.
- `ModelArtifact` / `read_artifact`: a version folder `models/<version>/` as found on disk (adapter
  files + `manifest.json`); `verify_adapter` checks it file by file; `load_adapter` loads base + LoRA.
- `write_candidate` / `read_candidate`: the pointer `models/candidate.json` to the newest trained version.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flywheel.config import TrainingConfig
from flywheel.core.errors import StateError
from flywheel.core.records import example_id
from flywheel.core.storage import FlywheelHome, StoragePath, local_copy, storage_path, write_json
from flywheel.models.base import TINY, load_base

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
LEGACY_WEIGHTS = "adapter_model.bin"  # older peft versions; accepted, not checked tensor by tensor
ADAPTER_FILES = (ADAPTER_WEIGHTS, ADAPTER_CONFIG)
MANIFEST_FILE = "manifest.json"
CANDIDATE_FILE = "candidate.json"


class AdapterError(StateError):
    """A model version whose folder, adapter files or pointer are missing, corrupted or do not match
    their manifest (the message names the file)."""


# --- ids -------------------------------------------------------------------------------------
def model_version_id(dataset_version: str, cfg: TrainingConfig, eval_set_hash: str | None) -> str:
    """Content id of a training run: same dataset, config, base model and eval set -> same id."""
    key = {
        "dataset_version": dataset_version,
        "training": cfg.model_dump(mode="json", exclude=TrainingConfig.PLACEMENT_KEYS),
        "base_model": cfg.base_model,
        "eval_set_hash": eval_set_hash,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def seed_replicate_ids(dataset_version: str, cfg: TrainingConfig, eval_set_hash: str | None, count: int) -> list[str]:
    """Version ids of the candidate's seed replicates: the same dataset and recipe trained with seeds
    `cfg.seed + 1 ... cfg.seed + count` (what the gate measures training-seed noise with)."""
    return [model_version_id(dataset_version, cfg.model_copy(update={"seed": cfg.seed + k}), eval_set_hash)
            for k in range(1, count + 1)]


def eval_set_hash(table: pa.Table) -> str:
    """Content hash of an eval set (EXAMPLE_SCHEMA rows): its conversations and slice tags,
    independent of row order. Without `example_id` / `slice` columns the ids are computed from the
    messages and every slice counts as untagged."""
    names = table.column_names
    if "example_id" in names:
        ids = table.column("example_id").to_pylist()
    else:
        ids = [example_id(m) for m in table.column("messages").to_pylist()]
    slices = table.column("slice").to_pylist() if "slice" in names else [None] * len(ids)
    canon = "\n".join(sorted(f"{i}\t{s or ''}" for i, s in zip(ids, slices, strict=True)))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_adapter_config(path: Path) -> dict[str, Any]:
    """Rewrite peft's `adapter_config.json` with `target_modules` sorted: peft saves the set it resolved
    from `all-linear` in hash order, which differs between processes (the same adapter, different bytes)."""
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    return config


# --- the version folder ----------------------------------------------------------------------
@dataclass(frozen=True)
class ModelArtifact:
    """A trained model version on disk: `models/<version>/` with adapter files and manifest.json."""

    version: str
    path: StoragePath
    manifest: dict[str, Any]

    @property
    def base_model(self) -> str:
        return str(self.manifest.get("base_model") or TINY)

    @property
    def dataset_version(self) -> str | None:
        return self.manifest.get("dataset_version")


def _read_manifest(folder: StoragePath) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise AdapterError(f"{path}: missing (not a complete model version folder)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{path}: corrupted JSON ({exc})") from None


def read_artifact(home: FlywheelHome, version: str, path: str | os.PathLike[str] | None = None) -> ModelArtifact:
    """The model version `version` (at `path`, relative to the home or absolute; default
    `models/<version>/`); never a hidden temp folder of an interrupted training run."""
    folder = home.resolve(path) if path else home.model(version)
    if folder.name.startswith(".") or folder.name.endswith(".tmp"):
        raise AdapterError(f"{folder}: a temporary folder of an unfinished training run, not a model version")
    return ModelArtifact(version=version, path=folder, manifest=_read_manifest(folder))


def verify_adapter(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a model folder: manifest readable, every file it lists present with its sha256, adapter
    config parseable, weights present and every tensor readable. Returns the manifest; raises
    `AdapterError` naming the file and the reason."""
    from safetensors import safe_open

    folder = local_copy(storage_path(path))  # on object storage: the cached copy, checked file by file
    manifest = _read_manifest(folder)
    for name, expected in (manifest.get("files") or {}).items():
        file = folder / name
        if not file.is_file():
            raise AdapterError(f"{file}: listed in the manifest but missing")
        actual = file_sha256(file)
        if actual != expected:
            raise AdapterError(f"{file}: corrupted (sha256 {actual[:12]}... does not match the manifest's {expected[:12]}...)")
    config = folder / ADAPTER_CONFIG
    if not config.is_file():
        raise AdapterError(f"{config}: missing (adapter config)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{config}: corrupted JSON ({exc})") from None
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        if (folder / LEGACY_WEIGHTS).is_file():
            return manifest
        raise AdapterError(f"{weights}: missing (adapter weights)")
    try:
        with safe_open(str(weights), framework="pt") as fh:
            keys = list(fh.keys())
            for key in keys:
                fh.get_tensor(key)
    except Exception as exc:  # safetensors raises several error types for damaged files
        raise AdapterError(f"{weights}: corrupted ({type(exc).__name__}: {exc})") from None
    if not keys:
        raise AdapterError(f"{weights}: holds no tensors")
    return manifest


def load_adapter(
    artifact: ModelArtifact | str | os.PathLike[str],
    home: FlywheelHome,
    *,
    dtype: str | Any = None,
    device: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(base model + the version's LoRA adapter via peft, tokenizer), after `verify_adapter`.

    `dtype` and `device` are those of `flywheel.models.base.load_base`."""
    from peft import PeftModel

    folder = local_copy(artifact.path if isinstance(artifact, ModelArtifact) else storage_path(artifact))
    manifest = verify_adapter(folder)
    base_model = str(manifest.get("base_model") or TINY)
    model, tokenizer = load_base(base_model, home, dtype=dtype, device=device)
    try:
        model = PeftModel.from_pretrained(model, str(folder))
    except Exception as exc:  # peft and torch raise many types for an adapter that does not fit
        raise AdapterError(
            f"{folder / ADAPTER_WEIGHTS}: cannot be applied to base {base_model!r} ({type(exc).__name__}: {exc})"
        ) from exc
    return model, tokenizer


# --- the candidate pointer -------------------------------------------------------------------
def write_candidate(home: FlywheelHome, artifact: ModelArtifact) -> None:
    """Point `models/candidate.json` at a trained version (the one evaluation picks up next)."""
    m = artifact.manifest
    write_json(
        {
            "version": artifact.version,
            "path": home.relative(artifact.path),
            "dataset_version": m.get("dataset_version"),
            "eval_set_hash": m.get("eval_set_hash"),
            "base_model": m.get("base_model"),
            "created": m.get("created"),
        },
        home.model(CANDIDATE_FILE),
    )


def read_candidate(home: FlywheelHome) -> ModelArtifact:
    """The model version `models/candidate.json` points at; `AdapterError` when nothing was trained
    yet, the pointer is unreadable, or its folder is not a complete version."""
    pointer = home.model(CANDIDATE_FILE)
    if not pointer.is_file():
        raise AdapterError(f"{pointer}: no candidate model yet (materialize lora_adapter first)")
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
        version = str(data["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AdapterError(f"{pointer}: expected JSON with a `version` ({exc})") from exc
    return read_artifact(home, version, data.get("path"))
