"""Dagster: the preference_pairs asset materialized in a temp home (pairs, counts, drop reasons, refusal)."""

from __future__ import annotations

import dagster as dg

from assets.preference_pairs import preference_pairs
from assets.resources import FlywheelResource
from flywheel.core.quarters import update_quarter
from tests.curation.preference_world import DROPPED, preference_world

QUARTER = "2026-10-01"


def test_preference_pairs_asset(flywheel_resource: FlywheelResource) -> None:
    home = flywheel_resource.home()
    version = preference_world(home, flywheel_resource.db_url())
    update_quarter(home, QUARTER, dataset_version=version)  # what training_dataset records for its quarter
    result = dg.materialize([preference_pairs], resources={"flywheel": flywheel_resource}, partition_key=QUARTER)
    assert result.success
    meta = result.asset_materializations_for_node("preference_pairs")[0].metadata
    assert meta["dataset_version"].value == version and meta["quarter"].value == "2026-Q4"
    assert (meta["read"].value, meta["accepted"].value, meta["dropped"].value) == (12, 5, 7)
    assert "| resubmission | 3 | 2 | 1 |" in meta["by_origin"].value
    assert all(f"| {reason} | 1 |" in meta["drops_by_reason"].value for reason in DROPPED)
    assert (home.dataset(version) / "preference_pairs.parquet").is_file()


def test_preference_pairs_asset_fails_without_a_dataset_version(flywheel_resource: FlywheelResource) -> None:
    result = dg.materialize([preference_pairs], resources={"flywheel": flywheel_resource}, raise_on_error=False,
                            partition_key=QUARTER)
    assert not result.success
    failure = result.failure_data_for_node("preference_pairs")
    assert failure is not None and "2026-Q4: no dataset version for this quarter" in str(failure.error)
