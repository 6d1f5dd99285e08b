"""The audit log: append-only, by construction and by a guard.

The store has no update or delete, and `guard_audit_log` (a `before_flush` listener the
`Store` installs) refuses any ORM change to an existing `AuditEntry`. Retention's
anonymisation (`retention.py`) is the one deliberate exception: an explicit Core UPDATE with
its own audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reset_mailbot.adapters.db.bound import SYSTEM, BoundStore
from reset_mailbot.adapters.db.schema import AuditEntry, Message, Request


class AuditLogIsAppendOnly(RuntimeError):
    """Something tried to change or delete an audit row through the ORM."""


class AuditLog(BoundStore):
    def append(
        self,
        event: str,
        *,
        request: Request | None = None,
        request_id: str | None = None,
        message: Message | int | None = None,
        actor: str = SYSTEM,
        data: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> AuditEntry:
        """Append one event. There is deliberately no way to change or remove it."""
        if request is not None:
            request_id = request.id
        message_pk: int | None
        if isinstance(message, Message):
            if message.id is None:
                self.session.flush()
            message_pk = message.id
        else:
            message_pk = message
        entry = AuditEntry(
            at=self._now(now),
            request_id=request_id,
            message_id=message_pk,
            event=event,
            actor=actor,
            data=data or {},
        )
        self.session.add(entry)
        return entry

    def entries(
        self,
        *,
        request_id: str | None = None,
        message_id: int | None = None,
        event: str | None = None,
    ) -> list[AuditEntry]:
        query = select(AuditEntry)
        if request_id is not None:
            query = query.where(AuditEntry.request_id == request_id)
        if message_id is not None:
            query = query.where(AuditEntry.message_id == message_id)
        if event is not None:
            query = query.where(AuditEntry.event == event)
        return list(self.session.scalars(query.order_by(AuditEntry.id)))


class AuditedStore(BoundStore):
    """A store whose every change is written to the unit of work's audit log."""

    def __init__(
        self, session: Session, clock: Callable[[], datetime], audit: AuditLog
    ) -> None:
        super().__init__(session, clock)
        self._audit = audit


def guard_audit_log(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, AuditEntry):
            raise AuditLogIsAppendOnly("audit_log rows cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, AuditEntry) and session.is_modified(obj):
            raise AuditLogIsAppendOnly("audit_log rows cannot be changed")
