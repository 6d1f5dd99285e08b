"""Working-day arithmetic across weekends and Dutch public holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from reset_mailbot.domain.working_days import add_working_days, deadline, is_working_day


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 26), True),  # a Thursday
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 4, 27), False),  # King's Day (Monday)
        (date(2026, 4, 6), False),  # Easter Monday
        (date(2026, 4, 3), True),  # Good Friday: not a day off in NL
        (date(2026, 5, 14), False),  # Ascension
        (date(2026, 5, 25), False),  # Whit Monday
        (date(2026, 12, 25), False),  # Christmas
        (date(2026, 12, 28), True),
        (date(2027, 1, 1), False),  # New Year
        (date(2025, 5, 5), False),  # Liberation Day, lustrum year
        (date(2026, 5, 5), True),  # Liberation Day, not a lustrum year
        (date(2030, 5, 6), True),
        (date(2030, 5, 5), False),  # Sunday anyway
    ],
)
def test_is_working_day(day: date, working: bool) -> None:
    assert is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (date(2026, 11, 26), date(2026, 11, 30)),  # Thu -> Fri, Mon
        (date(2026, 11, 28), date(2026, 12, 1)),  # Sat -> Mon, Tue
        (date(2026, 12, 24), date(2026, 12, 29)),  # Thu -> (Christmas), Mon 28, Tue 29
        (date(2026, 4, 24), date(2026, 4, 29)),  # Fri -> (King's Day Mon 27) Tue 28, Wed 29
        (date(2026, 5, 13), date(2026, 5, 18)),  # Wed -> (Ascension Thu) Fri 15, Mon 18
        (date(2026, 5, 22), date(2026, 5, 27)),  # Fri -> (Whit Monday) Tue 26, Wed 27
        (date(2026, 12, 31), date(2027, 1, 5)),  # Thu -> (New Year) Mon 4, Tue 5
        (date(2025, 5, 2), date(2025, 5, 7)),  # Fri -> (Liberation Day 2025) Tue 6, Wed 7
        (date(2026, 4, 2), date(2026, 4, 7)),  # Thu -> Good Friday, (Easter Monday) Tue 7
    ],
)
def test_add_two_working_days(start: date, expected: date) -> None:
    assert add_working_days(start, 2) == expected


def test_deadline_is_end_of_local_day_in_utc() -> None:
    # Thursday 26 Nov 2026, 23:30 in Amsterdam is still Thursday locally
    received = datetime(2026, 11, 26, 22, 30, tzinfo=UTC)
    due = deadline(received)
    # end of Monday 30 Nov local = 2026-12-01 00:00 CET = 2026-11-30 23:00 UTC
    assert due == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_deadline_across_dst() -> None:
    # Friday 23 Oct 2026 -> Mon 26, Tue 27 (after the switch to CET on 25 Oct)
    due = deadline(datetime(2026, 10, 23, 9, 0, tzinfo=UTC))
    assert due == datetime(2026, 10, 27, 23, 0, tzinfo=UTC)
