"""Dagster assets and asset checks, one module per group (thin: read, call flywheel/, write, report)."""
