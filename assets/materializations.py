"""Reading back what a partition's latest materialization recorded (checks and sensors use it)."""

from __future__ import annotations

from typing import Any

import dagster as dg


def latest_partition_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> dict[str, Any]:
    """The plain metadata values of the newest materialization of `key` (of `partition`, when given)."""
    if partition is None:
        record = instance.get_latest_materialization_event(key)
    else:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        record = records[0].event_log_entry if records else None
    if record is None or record.asset_materialization is None:
        return {}
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}
