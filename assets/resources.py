"""The one resource every asset uses: where the project file and the data live."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from flywheel.config import ProjectConfig, load_project, parse_project
from flywheel.core.storage import DATABASE_URL_ENV, DEFAULT_HOME, HOME_ENV, FlywheelHome

PROJECT_ENV = "FLYWHEEL_PROJECT"


class FlywheelResource(dg.ConfigurableResource):
    """Project file + data home. Unset fields fall back, at run time, to FLYWHEEL_PROJECT,
    FLYWHEEL_HOME and FLYWHEEL_DATABASE_URL (nothing is read from the environment at import)."""

    project_dir: str | None = Field(None, description="folder holding flywheel.yaml (default: $FLYWHEEL_PROJECT or the cwd)")
    home_dir: str | None = Field(None, description="data root (default: $FLYWHEEL_HOME or ./.flywheel)")
    database_url: str | None = Field(None, description="decision store and registry (default: $FLYWHEEL_DATABASE_URL or SQLite in the home)")

    def project_path(self) -> Path:
        return Path(self.project_dir or os.environ.get(PROJECT_ENV) or Path.cwd())

    def project(self) -> ProjectConfig:
        path = self.project_path()
        if (path / "flywheel.yaml").exists() or path.suffix in (".yaml", ".yml"):
            return load_project(path)
        return parse_project({}, source=f"{path} (no flywheel.yaml: defaults)", root=path.resolve())

    def home(self) -> FlywheelHome:
        return FlywheelHome(self.home_dir or os.environ.get(HOME_ENV) or DEFAULT_HOME)

    def db_url(self) -> str:
        return self.database_url or os.environ.get(DATABASE_URL_ENV) or self.home().database_url()
