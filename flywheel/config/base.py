"""What every section of the project file shares: strict models and the error they raise."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

PROJECT_FILE = "flywheel.yaml"


class ConfigError(ValueError):
    """A project file that cannot be used: names the file, the key and what was expected."""


class StrictModel(BaseModel):
    """A section of the project file: unknown keys are refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
