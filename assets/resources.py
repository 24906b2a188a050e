"""The one resource every asset uses: where the project file and the data live."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from flywheel.config import ProjectConfig
from flywheel.core.storage import FlywheelHome
from flywheel.project import load_project_or_defaults, project_folder


class FlywheelResource(dg.ConfigurableResource):
    """Project file + data home. Unset fields fall back, at run time, to FLYWHEEL_PROJECT,
    FLYWHEEL_HOME and FLYWHEEL_DATABASE_URL (nothing is read from the environment at import)."""

    project_dir: str | None = Field(None, description="folder holding flywheel.yaml (default: $FLYWHEEL_PROJECT or the cwd)")
    home_dir: str | None = Field(None, description="data root (default: $FLYWHEEL_HOME or ./.flywheel)")
    database_url: str | None = Field(None, description="decision store and registry (default: $FLYWHEEL_DATABASE_URL or SQLite in the home)")

    def project_path(self) -> Path:
        return project_folder(self.project_dir)

    def project(self) -> ProjectConfig:
        return load_project_or_defaults(self.project_dir)

    def home(self) -> FlywheelHome:
        return FlywheelHome.from_env(self.home_dir)

    def db_url(self) -> str:
        return self.home().database_url(self.database_url)
