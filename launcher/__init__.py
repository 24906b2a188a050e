"""Dagster run launchers for the flywheel's instance (configured in `dagster.yaml`, not in the code location)."""

from launcher.warm_fork import WarmForkRunLauncher

__all__ = ["WarmForkRunLauncher"]
