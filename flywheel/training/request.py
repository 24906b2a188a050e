"""What one training run is asked to do and what it reports back (both cross the Pipes boundary)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flywheel.config import CurationConfig, TrainingConfig
from flywheel.core.storage import FlywheelHome
from flywheel.curation.versions import latest_path, latest_version
from flywheel.training.data import TrainingDataError


class TrainingRequest(BaseModel):
    """Everything one training run needs; serialisable so it can cross a process (Pipes) boundary."""

    model_config = ConfigDict(extra="forbid")

    home: str = Field(..., description="FLYWHEEL_HOME of the run")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    dataset_version: str | None = Field(None, description="default: the id in datasets/LATEST")
    eval_set_path: str | None = Field(
        None, description="fixed eval set Parquet (EXAMPLE_SCHEMA); None skips the leak check"
    )
    eval_set_hash: str | None = Field(
        None, description="content hash of the eval set (default: hashed from the eval set's rows)"
    )
    force: bool = Field(False, description="retrain even when models/<version>/ already exists")
    leak_rule: CurationConfig | None = Field(
        None, description="the project's curation settings, so the leak check applies the curation rule exactly"
    )
    seed_replicates: int = Field(
        0, ge=0, description="also train the dataset with this many other seeds (evaluation.seed_replicates)"
    )


@dataclass
class TrainingResult:
    version: str
    path: str
    dataset_version: str
    eval_set_hash: str | None
    reused: bool
    manifest: dict[str, Any] = field(default_factory=dict)
    replicates: list[str] = field(default_factory=list)
    preference: dict[str, Any] = field(default_factory=dict)  # the DPO stage's report, or why it was skipped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_request(arg: str) -> TrainingRequest:
    """A request from a JSON file path or an inline JSON object."""
    text = arg.strip()
    if not text.startswith("{"):
        text = Path(arg).read_text(encoding="utf-8")
    return TrainingRequest.model_validate_json(text)


def latest_dataset_version(home: FlywheelHome) -> str:
    """The dataset version `datasets/LATEST` names; refuses when there is none to train on."""
    version = latest_version(home)
    if version is None:
        raise TrainingDataError(
            f"{latest_path(home)}: missing or empty: no dataset version to train on (materialize training_dataset first)"
        )
    return version
