"""Cron expressions (the project's automation schedules): parsed and checked once, here, for the config
validation and for `flywheel status`'s next run. The accepted syntax is a subset of what Dagster accepts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

_CRON_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                 "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_MONTHS = {m: k for k, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                       "nov", "dec"), start=1)}
_WEEKDAYS = {d: k for k, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: 29 in leap years
CRON_HELP = ("a 5-field cron expression 'minute hour day-of-month month day-of-week' (numbers, names "
             "such as mon or jan, *, a-b ranges, /n steps, comma lists; e.g. '15 0 * * *') or @hourly, "
             "@daily, @weekly, @monthly, @yearly")


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression: the values each field allows (weekdays 0-6, Sunday 0)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool  # day of month is not `*`; with the weekday also restricted, either one fires
    weekdays_restricted: bool

    def fires_on(self, day: date) -> bool:
        """Whether the expression fires on `day` (at its minutes and hours)."""
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.days, (day.weekday() + 1) % 7 in self.weekdays
        return (dom or dow) if self.days_restricted and self.weekdays_restricted else (dom and dow)


def _cron_number(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> int:
    value = names.get(text.lower()) if names else None
    if value is None:
        if not text.isascii() or not text.isdigit():
            known = f" or a name ({', '.join(names)})" if names else ""
            raise ValueError(f"{name}: {text!r} is not a number{known}")
        value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside {lo}-{hi}")
    return value


def _cron_field(spec: str, name: str, lo: int, hi: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit() or not 0 < int(step_text) <= hi - lo:
                raise ValueError(f"{name}: step {step_text!r} in {part!r} is not a whole number from 1 to {hi - lo}")
            step = int(step_text)
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            first, _, last = base.partition("-")
            a, b = _cron_number(first, name, lo, hi, names), _cron_number(last, name, lo, hi, names)
            if a > b:
                raise ValueError(f"{name}: range {base!r} runs backwards")
        elif base:
            a = b = _cron_number(base, name, lo, hi, names)
            if slash:  # `5/15`: from 5 to the end, every 15
                b = hi
        else:
            raise ValueError(f"{name}: empty entry in {spec!r}")
        values.update(range(a, b + 1, step))
    return values


def parse_cron(expression: str) -> CronSpec:
    """Parse a cron expression (see `CRON_HELP`); raises ValueError saying what is wrong, including a day
    of month none of its months has (day 30 of February)."""
    text = _CRON_ALIASES.get(expression.strip().lower(), expression)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected {CRON_HELP}; this one has {len(fields)} field(s)")
    minutes, hours, days, months, weekdays = (
        _cron_field(f, name, lo, hi, names) for f, (name, lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True)
    )
    spec = CronSpec(frozenset(minutes), frozenset(hours), frozenset(days), frozenset(months),
                    frozenset(d % 7 for d in weekdays), fields[2] != "*", fields[4] != "*")
    if spec.days_restricted and not any(d <= _MONTH_DAYS[m - 1] for m in spec.months for d in spec.days):
        raise ValueError("never fires: none of its months has that day of month")
    return spec
