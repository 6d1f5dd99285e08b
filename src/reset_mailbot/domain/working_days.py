"""The two-working-day promise: deadlines in Dutch working days.

Forus promises municipalities a reset within two working days. A working day is a weekday that is
not a Dutch public holiday (from the `holidays` package: New Year, Easter Monday, King's Day,
Liberation Day in lustrum years, Ascension, Whit Monday, Christmas). Good Friday is listed by
`holidays` but is not a general day off in the Netherlands (nor for Forus), so it counts as a
working day. The deadline is the end (midnight, local time) of the N-th working day after the day
the request became complete: a request completed on Thursday is due by the end of Monday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

_NOT_A_DAY_OFF = frozenset({"Good Friday"})


@lru_cache(maxsize=64)
def _dutch_holidays(year: int) -> frozenset[date]:
    calendar = holidays.country_holidays("NL", years=year, language="en_US")
    return frozenset(day for day, name in calendar.items() if name not in _NOT_A_DAY_OFF)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _dutch_holidays(day.year)


def add_working_days(start: date, days: int) -> date:
    """The `days`-th working day after `start` (start itself never counts)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current


def deadline(
    received_at: datetime, working_days: int = 2, tz: str = "Europe/Amsterdam"
) -> datetime:
    """End of the N-th working day after the local day of `received_at`, as an aware UTC time."""
    zone = ZoneInfo(tz)
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    local_day = received_at.astimezone(zone).date()
    due_day = add_working_days(local_day, working_days)
    end = datetime.combine(due_day + timedelta(days=1), time(0, 0), tzinfo=zone)
    return end.astimezone(UTC)
