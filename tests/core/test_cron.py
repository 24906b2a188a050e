"""flywheel.core.cron: the cron expressions of the automation section, parsed once for the config and status."""

from __future__ import annotations

from datetime import date

import pytest
from dagster._utils.schedules import is_valid_cron_string

from flywheel.core.cron import parse_cron

ACCEPTED = ["15 0 * * *", "0 7 * * 1", "0 3 1 1,4,7,10 *", "*/5 9-17 * * 1-5", "0 7 * * mon", "0 7 * * MON-FRI",
            "0 0 1 jan *", "0 0 * * 7", "0 0 29 2 *", "0-59/15 * * * *", "1/5 * * * *", "@daily", "@hourly",
            "@weekly", "@monthly", "@yearly", "@annually", "@midnight", "0 0 31 * *"]
REFUSED = ["every day", "* * * * * *", "", "@often", "60 * * * *", "0 0 0 * *", "0 0 * * 8", "*/0 * * * *",
           "*/90 * * * *", "5-1 * * * *", "1,,2 * * * *", "0 0 30 2 *", "0 0 31 4 *", "0 0 L * *", "0 0 ? * *",
           "0 0 * * 1#2", "H * * * *", "+1 * * * *", "٣ * * * *"]


@pytest.mark.parametrize("expression", ACCEPTED)
def test_what_the_config_accepts_dagster_schedules(expression: str) -> None:
    parse_cron(expression)
    assert is_valid_cron_string(expression)


@pytest.mark.parametrize("expression", REFUSED)
def test_refused_with_a_reason(expression: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse_cron(expression)


def test_fields_and_days() -> None:
    spec = parse_cron("*/20 9-11 * * mon-fri")
    assert spec.minutes == {0, 20, 40} and spec.hours == {9, 10, 11} and spec.weekdays == {1, 2, 3, 4, 5}
    assert spec.fires_on(date(2026, 11, 16)) and not spec.fires_on(date(2026, 11, 15))  # Monday, Sunday
    either = parse_cron("0 0 1 * sun")  # day of month and weekday both given: either one fires
    assert either.fires_on(date(2026, 11, 1)) and either.fires_on(date(2026, 11, 8))
    assert not either.fires_on(date(2026, 11, 9))
    assert parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
