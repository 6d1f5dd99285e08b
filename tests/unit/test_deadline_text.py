"""deadline_label and sla_status: the end of the promised working day (issue #17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reset_mailbot.domain.deadline_text import deadline_label, sla_status
from reset_mailbot.domain.working_days import deadline

AMS = ZoneInfo("Europe/Amsterdam")


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


def test_midnight_is_the_end_of_the_day_before() -> None:
    due = _local(2026, 12, 10)  # stored as 2026-12-09 23:00 UTC
    assert deadline_label(due.astimezone(UTC), AMS) == "wo 9 dec, einde werkdag"
    assert deadline_label(due, AMS, "en") == "Wed 9 Dec, end of working day"
    assert deadline_label(due, AMS, "de") == "wo 9 dec, einde werkdag"


def test_a_deadline_from_the_working_day_rule_names_a_working_day() -> None:
    # completed Thursday 10 Dec -> due by the end of Monday 14 Dec (the weekend does not count)
    due = deadline(_local(2026, 12, 10, 16, 0), 2, "Europe/Amsterdam")
    assert deadline_label(due, AMS) == "ma 14 dec, einde werkdag"
    assert deadline_label(due, AMS, "en") == "Mon 14 Dec, end of working day"
    # Friday before Christmas: 25 and 26 Dec are holidays (and the weekend)
    assert deadline_label(deadline(_local(2026, 12, 24, 9), 2), AMS) == "di 29 dec, einde werkdag"


@pytest.mark.parametrize(("completed", "label"), [
    # DST ends Sunday 25 Oct 2026: due by the end of Monday 26 Oct, midnight is 23:00 UTC
    (datetime(2026, 10, 22, 12, tzinfo=AMS), "ma 26 okt, einde werkdag"),
    # DST starts Sunday 29 Mar 2026: due by the end of Monday 30 Mar, midnight is 22:00 UTC
    (datetime(2026, 3, 26, 12, tzinfo=AMS), "ma 30 mrt, einde werkdag"),
])
def test_dst_changes(completed: datetime, label: str) -> None:
    due = deadline(completed, 2)
    assert deadline_label(due, AMS) == label
    assert due.astimezone(AMS).hour == 0


def test_a_deadline_not_at_midnight_shows_its_time() -> None:
    assert deadline_label(_local(2026, 12, 9, 15, 0), AMS) == "wo 9 dec, 15:00"
    assert deadline_label(_local(2026, 12, 9, 15, 0), AMS, "en") == "Wed 9 Dec, 15:00"


def test_sla_status_around_midnight() -> None:
    due = _local(2026, 12, 10).astimezone(UTC)  # end of Wednesday 9 Dec
    assert sla_status(due, _local(2026, 12, 8, 23, 59), AMS, closed=False) == "on_time"
    assert sla_status(due, _local(2026, 12, 9, 0, 0), AMS, closed=False) == "due_today"
    # 23:30 UTC on the 8th is already 00:30 on the 9th in Amsterdam
    assert sla_status(due, datetime(2026, 12, 8, 23, 30, tzinfo=UTC), AMS,
                      closed=False) == "due_today"
    assert sla_status(due, due - timedelta(seconds=1), AMS, closed=False) == "due_today"
    assert sla_status(due, due, AMS, closed=False) == "overdue"
    assert sla_status(due, _local(2026, 12, 14, 9), AMS, closed=False) == "overdue"
    assert sla_status(due, _local(2026, 12, 14, 9), AMS, closed=True) == "closed"
    assert sla_status(None, _local(2026, 12, 9, 9), AMS, closed=False) == "none"
    assert sla_status(None, _local(2026, 12, 9, 9), AMS, closed=True) == "closed"


def test_sla_status_over_a_weekend_and_dst() -> None:
    due = deadline(_local(2026, 10, 23, 10), 2)  # Friday -> end of Tuesday 27 Oct
    assert sla_status(due, _local(2026, 10, 25, 12), AMS, closed=False) == "on_time"  # Sunday
    assert sla_status(due, _local(2026, 10, 27, 23, 59), AMS, closed=False) == "due_today"
    assert sla_status(due, _local(2026, 10, 28, 0, 0), AMS, closed=False) == "overdue"
