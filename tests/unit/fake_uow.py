"""A fake unit of work for service tests without a database (cosmicpython's FakeUnitOfWork).

It keeps rows in lists and applies the same domain rules the real stores apply
(`domain/request_state.validate_transition`, `domain/lifecycle.merge_reply`), so a service test
sees the intents it produced: the requests created and merged, their transitions, the
executions and the replies queued, the audit events. The real stores are tested against SQLite
and PostgreSQL in tests/integration/test_storage.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reset_mailbot.adapters.db.requests import apply_items, new_request_id, request_items
from reset_mailbot.adapters.db.schema import Execution, Message, OutboxItem, Request
from reset_mailbot.domain.lifecycle import merge_reply
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.request_state import (
    FINAL_STATES,
    MERGEABLE_STATES,
    RequestState,
    validate_transition,
)


@dataclass
class FakeAuditLog:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def append(self, event: str, *, data: dict[str, Any] | None = None, **_: Any) -> None:
        self.events.append((event, data or {}))

    def names(self) -> list[str]:
        return [event for event, _ in self.events]


@dataclass
class FakeRequests:
    audit: FakeAuditLog
    rows: list[Request] = field(default_factory=list)
    threads: dict[str, set[str]] = field(default_factory=dict)
    executed_counts: dict[str, int] = field(default_factory=dict)  # what count_executed says

    def for_thread(self, sender: str, message_ids: Iterable[str | None], *,
                   request_ids: Iterable[str] = (),
                   states: Iterable[str] | None = MERGEABLE_STATES) -> Request | None:
        ids = {m.strip() for m in message_ids if m}
        tags = set(request_ids)
        allowed = None if states is None else {str(s) for s in states}
        for request in reversed(self.rows):
            if request.sender != sender.strip().lower():
                continue
            if allowed is not None and request.state not in allowed:
                continue
            if ids & self.threads[request.id] or request.id in tags:
                return request
        return None

    def create(self, decision: Decision, message: Message, *, now: datetime,
               language: str | None = None, deadline_at: datetime | None = None,
               **_: Any) -> Request:
        state = RequestState.INCOMPLETE if decision.request.missing else RequestState.COMPLETE
        request = Request(
            id=new_request_id(), state=state.value, sender=decision.sender.address,
            municipality=decision.sender.municipality, language=language, created_at=now,
            updated_at=now, deadline_at=deadline_at,
            completed_at=now if state is RequestState.COMPLETE else None,
        )
        apply_items(request, decision.request)
        self.rows.append(request)
        self.threads[request.id] = {message.message_id} if message.message_id else set()
        self.audit.append("request_created", data={"state": request.state})
        return request

    def merge(self, request: Request, decision: Decision, message: Message, *,
              now: datetime, **_: Any) -> Request:
        step = merge_reply(request.state, request_items(request), decision.request)
        apply_items(request, step.items)
        if message.message_id:
            self.threads[request.id].add(message.message_id)
        self.audit.append("request_merged")
        if step.becomes is not None:
            self.transition(request, step.becomes, now=now)
        return request

    def transition(self, request: Request, new_state: RequestState | str, *, now: datetime,
                   data: dict[str, Any] | None = None, **_: Any) -> None:
        new = validate_transition(request.state, new_state)
        old, request.state = request.state, new.value
        if new is RequestState.COMPLETE and request.completed_at is None:
            request.completed_at = now
        if new in FINAL_STATES:
            request.closed_at = now
        self.audit.append("state_changed", data={"from": old, "to": new.value, **(data or {})})

    def count_executed(self, since: datetime, *, municipality: str | None = None,
                       account_email: str | None = None, **_: Any) -> int:
        return self.executed_counts.get(municipality or account_email or "", 0)


@dataclass
class FakeExecutions:
    audit: FakeAuditLog
    rows: list[Execution] = field(default_factory=list)

    def create(self, request: Request, *, now: datetime, **_: Any) -> Execution:
        execution = Execution(request_id=request.id, state="pending", attempts=0,
                              idempotency_key=f"reset-mailbot:{request.id}", created_at=now)
        self.rows.append(execution)
        self.audit.append("execution_queued")
        return execution


@dataclass
class FakeOutbox:
    audit: FakeAuditLog
    threads: dict[str, set[str]]
    rows: list[OutboxItem] = field(default_factory=list)
    sent_last_hour: dict[str, int] = field(default_factory=dict)

    def count_replies_to(self, address: str, since: datetime) -> int:
        return self.sent_last_hour.get(address.lower(), 0)

    def queue(self, *, kind: str, to_address: str, subject: str, body: str, rfc822: bytes,
              reply_message_id: str, request: Request | None = None,
              message: Message | None = None, now: datetime) -> OutboxItem:
        item = OutboxItem(kind=kind, to_address=to_address, subject=subject, body=body,
                          rfc822=rfc822, reply_message_id=reply_message_id, state="queued",
                          request_id=request.id if request is not None else None)
        self.rows.append(item)
        if request is not None:
            self.threads[request.id].add(reply_message_id)
        self.audit.append("reply_queued", data={"kind": kind})
        return item


class FakeUnitOfWork:
    """The stores the service layer uses, in memory."""

    def __init__(self) -> None:
        self.audit_log = FakeAuditLog()
        self.requests = FakeRequests(self.audit_log)
        self.executions = FakeExecutions(self.audit_log)
        self.outbox = FakeOutbox(self.audit_log, self.requests.threads)
        self.limit_checks = 0

    def serialise_reset_limits(self) -> None:
        """One in-memory unit of work: nothing to serialise; counted so tests can see it."""
        self.limit_checks += 1
