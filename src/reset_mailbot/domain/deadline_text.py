"""Deadlines as people read them: the end of the promised working day (issue #17). Pure.

A stored `deadline_at` is the end of the promised working day, i.e. midnight at the start of
the next day in the `[sla] timezone` (`working_days.deadline`): 2026-12-10 00:00
Europe/Amsterdam means "by the end of Wednesday 9 December". Shown as that day, not as a
midnight that reads like the day after.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

SlaStatus = Literal["on_time", "due_today", "overdue", "closed", "none"]

_DAYS = {
    "nl": ("ma", "di", "wo", "do", "vr", "za", "zo"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS = {
    "nl": ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
_END_OF_DAY = {"nl": "einde werkdag", "en": "end of working day"}


def promised_day(deadline_at: datetime, tz: ZoneInfo) -> date:
    """The local day whose end `deadline_at` is (the day of the instant just before it)."""
    return (deadline_at.astimezone(tz) - timedelta(microseconds=1)).date()


def deadline_label(deadline_at: datetime, tz: ZoneInfo, language: str = "nl") -> str:
    """"wo 9 dec, einde werkdag" (English: "Wed 9 Dec, end of working day"); a deadline that
    is not at local midnight (set by hand, another zone) shows its time instead: "wo 9 dec,
    15:00". Unknown languages are Dutch."""
    if language not in _DAYS:
        language = "nl"
    local = deadline_at.astimezone(tz)
    day = promised_day(deadline_at, tz)
    text = f"{_DAYS[language][day.weekday()]} {day.day} {_MONTHS[language][day.month - 1]}"
    at_midnight = (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    return f"{text}, {_END_OF_DAY[language] if at_midnight else f'{local:%H:%M}'}"


def sla_status(
    deadline_at: datetime | None, now: datetime, tz: ZoneInfo, *, closed: bool
) -> SlaStatus:
    """Where a request stands against its promise: "closed" (nothing more is due), "none"
    (no deadline: not complete yet), "overdue" (the deadline has passed), "due_today" (the
    promised day is today in `tz`), else "on_time"."""
    if closed:
        return "closed"
    if deadline_at is None:
        return "none"
    if now >= deadline_at:
        return "overdue"
    if promised_day(deadline_at, tz) == now.astimezone(tz).date():
        return "due_today"
    return "on_time"
