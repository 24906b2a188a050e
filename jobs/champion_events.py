"""Registry changes made outside a run, recorded on `champion_model` so the catalog shows the real champion.

`flywheel models promote` and `flywheel models rollback` change the registry without a Dagster run;
`record_champion_change` reports a runless materialization of `champion_model` on the instance in
`$DAGSTER_HOME` (the one the UI reads), with the same `champion`, `promoted_by` and `reason` keys as
the asset's own materializations plus the `action`. The CLI reaches it through the orchestrator entry
point (`DagsterOrchestrator.record_champion_change`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import dagster as dg

from flywheel.core.errors import StateError
from flywheel.core.quarters import current_quarter

CHAMPION_ASSET = dg.AssetKey("champion_model")


def record_champion_change(
    version: str, action: str, by: str, reason: str, instance: dg.DagsterInstance | None = None
) -> None:
    """Report a runless `champion_model` materialization: `version` became champion by `action`
    (promoted | forced | rollback), done by `by`, because `reason`. Without `instance` the one in
    `$DAGSTER_HOME` is used; StateError when that is not set. Recorded on the current quarter's partition."""
    event = dg.AssetMaterialization(
        asset_key=CHAMPION_ASSET,
        partition=current_quarter(datetime.now(UTC)),
        description=f"{action} outside a run: {version} is the champion",
        metadata={"champion": version, "action": action, "promoted_by": by, "reason": reason,
                  "recorded_by": "flywheel CLI (no run)"},
    )
    if instance is not None:
        instance.report_runless_asset_event(event)
        return
    if not os.environ.get("DAGSTER_HOME"):
        raise StateError("$DAGSTER_HOME is not set (`make ui` and `flywheel demo` use ./.dagster: "
                         "export DAGSTER_HOME=$PWD/.dagster to record it there)")
    with dg.DagsterInstance.get() as own:
        own.report_runless_asset_event(event)
