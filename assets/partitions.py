"""Partition definitions shared by assets, jobs and sensors."""

import dagster as dg

# Fixed, like every partitioned asset in dagster-open-platform: the first day flywheel can capture.
PARTITIONS_START = "2025-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START)
# weeks start on Monday (day_offset=1); the key is the Monday's date
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date="2024-12-30", day_offset=1)
