"""What every store of a unit of work shares: its session, its clock and the audit log.

The stores (`messages.py`, `requests.py`, `outbox.py`, `executions.py`, `audit_log.py`) are
thin: they load and store rows and write the audit events of what they store. Which state a
request goes to is decided in `domain/lifecycle.py`; the service applies it through them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

SYSTEM = "system"  # the actor of everything the daemon does by itself


class BoundStore:
    """A store bound to one unit of work's session (see `unit_of_work.UnitOfWork`)."""

    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.session = session
        self._clock = clock

    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else self._clock()


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
