"""Requests: created from a decided message, merged with replies, moved between states.

The store applies what the domain decides: `domain/request_state.py` says which transition is
allowed, `domain/lifecycle.py` which one a merge or an executor's answer leads to. Every
change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import inspect as sa_inspect

from reset_mailbot.adapters.db.audit_log import AuditedStore
from reset_mailbot.adapters.db.bound import SYSTEM
from reset_mailbot.adapters.db.schema import Message, Request, ThreadId
from reset_mailbot.domain.lifecycle import merge_reply
from reset_mailbot.domain.models import Decision, ResetRequest
from reset_mailbot.domain.request_state import (
    FINAL_STATES,
    INITIAL_STATES,
    MERGEABLE_STATES,
    InvalidTransition,
    RequestState,
    validate_transition,
)


def sender_name_of(message: Message | None) -> str | None:
    """The display name the decision recorded for `message`'s sender, if any."""
    sender = ((message.decision or {}) if message is not None else {}).get("sender") or {}
    name = sender.get("name") if isinstance(sender, dict) else None
    return name if isinstance(name, str) and name else None


def new_request_id() -> str:
    """Short and safe to read aloud on the phone: "R-" + 8 base32 characters (40 random bits)."""
    return "R-" + base64.b32encode(secrets.token_bytes(5)).decode("ascii")


def request_items(request: Request) -> ResetRequest:
    """The items a stored request holds, as the domain's ResetRequest (for merging)."""
    return ResetRequest.model_validate(
        {
            "account_email": request.account_email,
            "identity_verified": request.identity_verified,
            "reset_instructed": request.reset_instructed,
            "case_reference": request.case_reference,
            "evidence": request.evidence or [],
            "missing_details": request.missing_details or {},
        }
    )


def apply_items(request: Request, items: ResetRequest) -> None:
    dumped = items.model_dump(mode="json")
    request.account_email = items.account_email
    request.identity_verified = items.identity_verified
    request.reset_instructed = items.reset_instructed
    request.case_reference = items.case_reference
    request.evidence = dumped["evidence"]
    request.missing = [item.value for item in items.missing]
    request.missing_details = dumped["missing_details"]


def items_snapshot(request: Request) -> dict[str, Any]:
    return {
        "account_email": request.account_email,
        "identity_verified": request.identity_verified,
        "reset_instructed": request.reset_instructed,
        "case_reference": request.case_reference,
    }


class RequestStore(AuditedStore):
    def lock(self, request_id: str) -> Request | None:
        """The request row, locked for this transaction (PostgreSQL: FOR UPDATE; SQLite: the
        write lock BEGIN IMMEDIATE took), so two people acting at once cannot both succeed;
        read afresh from the database."""
        return self.session.get(Request, request_id.strip(), with_for_update=True,
                                populate_existing=True)

    def claim_sla_marker(self, request_id: str, *, breach: bool, now: datetime) -> bool:
        """Set the request's SLA warning (or breach) marker if nobody did and it is still open;
        True when this transaction set it (a conditional UPDATE: two daemons warn once)."""
        column = Request.sla_breached_at if breach else Request.sla_warned_at
        result = self.session.execute(
            update(Request)
            .where(Request.id == request_id, column.is_(None),
                   Request.state.not_in([s.value for s in FINAL_STATES]))
            # keep updated_at: thread matching orders by it, and nothing about the request changed
            .values({column: now, Request.updated_at: Request.updated_at})
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def get(self, request_id: str) -> Request | None:
        return self.session.get(Request, request_id)

    def for_thread(
        self,
        sender: str,
        message_ids: Iterable[str | None],
        *,
        request_ids: Iterable[str] = (),
        states: Iterable[str] | None = MERGEABLE_STATES,
    ) -> Request | None:
        """The request a reply belongs to (policy, "Threads").

        `message_ids` are the reply's In-Reply-To and References entries; any of them may be one
        of the request's own messages or one of our replies. Only a request from the same
        sender (case-insensitive) counts: a colleague answering in the thread starts their own.
        By default only requests still open for merging (`incomplete`) are returned; pass
        `states=None` for any state. The most recently updated match wins.
        `request_ids` are request tags from the reply's signed Subject ("[R-...]", which our
        replies carry): they find the request as its message ids do.
        """
        ids = sorted({m.strip() for m in message_ids if m and m.strip()})
        tags = sorted(set(request_ids))
        if not ids and not tags:
            return None
        in_thread = select(ThreadId.request_id).where(ThreadId.message_id.in_(ids))
        query = select(Request).where(
            or_(Request.id.in_(in_thread), Request.id.in_(tags)),
            Request.sender == sender.strip().lower(),
        )
        if states is not None:
            query = query.where(Request.state.in_([str(s) for s in states]))
        query = query.order_by(Request.updated_at.desc(), Request.id.desc()).limit(1)
        return self.session.scalars(query).first()

    def create(
        self,
        decision: Decision,
        message: Message,
        *,
        municipality: str | None = None,
        state: RequestState | str | None = None,
        language: str | None = None,
        deadline_at: datetime | None = None,
        actor: str = SYSTEM,
        now: datetime | None = None,
    ) -> Request:
        """A new request from a decided message; state from its items unless given."""
        now = self._now(now)
        items = decision.request
        if state is None:
            state = RequestState.INCOMPLETE if items.missing else RequestState.COMPLETE
        state = RequestState(state)
        if state not in INITIAL_STATES:
            raise InvalidTransition("(new)", state)
        sender = (decision.sender.address or "").strip().lower()
        if not sender:
            raise ValueError("a request needs an authenticated sender address")
        request_id = new_request_id()
        # 40 bits: a clash is rare, but over years of requests not negligible. No autoflush:
        # requests are flushed as they are created, so pending rows hold none to find.
        with self.session.no_autoflush:
            while self.session.get(Request, request_id) is not None:
                request_id = new_request_id()
        request = Request(
            id=request_id,
            state=state.value,
            municipality=municipality or decision.sender.municipality,
            sender=sender,
            language=language,
            created_at=now,
            updated_at=now,
            deadline_at=deadline_at,
            completed_at=now if state == RequestState.COMPLETE else None,
        )
        apply_items(request, items)
        self.session.add(request)
        message.request = request
        if message.message_id:
            self.add_thread_id(request, message.message_id)
        self.session.flush()  # the audit row refers to the request by its id only
        self._audit.append(
            "request_created",
            request=request,
            message=message,
            actor=actor,
            now=now,
            data={"state": request.state, **items_snapshot(request)},
        )
        return request

    def merge(
        self,
        request: Request,
        decision: Decision,
        message: Message,
        *,
        actor: str = SYSTEM,
        now: datetime | None = None,
    ) -> Request:
        """Merge a same-sender reply into an open request; the new text wins on conflict.

        `domain/lifecycle.merge_reply` says what the merge gives and whether the request
        becomes complete (the caller then gates, schedules the execution and queues replies in
        the same unit of work).
        """
        now = self._now(now)
        step = merge_reply(request.state, request_items(request), decision.request)
        before = items_snapshot(request)
        apply_items(request, step.items)
        request.updated_at = now
        message.request = request
        if message.message_id:
            self.add_thread_id(request, message.message_id)
        self.session.flush()
        self._audit.append(
            "request_merged",
            request=request,
            message=message,
            actor=actor,
            now=now,
            data={"message_key": message.message_key, "before": before,
                  "after": items_snapshot(request)},
        )
        if step.becomes is not None:
            self.transition(request, step.becomes, actor=actor, now=now)
        return request

    def add_thread_id(self, request: Request, message_id: str) -> None:
        """Remember a Message-ID of the request's thread (idempotent)."""
        message_id = message_id.strip()
        state = sa_inspect(request)
        # a request not yet in the database (created in this unit of work) has no rows to ask
        # for: its collection starts empty without a query
        if state.transient or state.pending or "thread_ids" not in state.unloaded:
            if not any(t.message_id == message_id for t in request.thread_ids):
                request.thread_ids.append(ThreadId(message_id=message_id))
            return
        # Not loaded: ask for the one row instead of loading the whole thread (the query
        # autoflushes, so ids added earlier in this unit of work are seen), and add the row
        # without touching the collection, which would load it.
        known = self.session.scalar(
            select(func.count()).select_from(ThreadId).where(
                ThreadId.request_id == request.id, ThreadId.message_id == message_id
            )
        )
        if not known:
            self.session.add(ThreadId(request_id=request.id, message_id=message_id))

    def transition(
        self,
        request: Request,
        new_state: RequestState | str,
        *,
        actor: str = SYSTEM,
        now: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Change state if the state machine allows it (else InvalidTransition); audit it."""
        now = self._now(now)
        old = request.state
        new = validate_transition(old, new_state)
        request.state = new.value
        request.updated_at = now
        if new == RequestState.COMPLETE and request.completed_at is None:
            request.completed_at = now
        if new == RequestState.EXECUTED:
            request.executed_at = now
        if new in FINAL_STATES:
            request.closed_at = now
        self._audit.append(
            "state_changed",
            request=request,
            actor=actor,
            now=now,
            data={"from": old, "to": new.value, **(data or {})},
        )

    def approve(self, request: Request, *, by: str, now: datetime | None = None) -> None:
        """Four-eyes gate (#5): `awaiting_approval → complete`, recording who approved."""
        now = self._now(now)
        self.transition(request, RequestState.COMPLETE, actor=by, now=now,
                        data={"approved_by": by})
        request.approved_by = by
        request.approved_at = now

    def deny(
        self, request: Request, *, by: str, reason: str, now: datetime | None = None
    ) -> None:
        """Four-eyes gate (#5): `awaiting_approval → denied`, recording who and why."""
        now = self._now(now)
        self.transition(request, RequestState.DENIED, actor=by, now=now,
                        data={"denied_by": by, "reason": reason})
        request.denied_by = by
        request.denied_at = now
        request.result_detail = reason

    # ------------------------------------------------------------------- outbox

    def count_executed(
        self,
        since: datetime,
        *,
        municipality: str | None = None,
        account_email: str | None = None,
        include_in_flight: bool = False,
        exclude_request_id: str | None = None,
    ) -> int:
        """Requests executed since `since`, for the reset limits of issue #5.

        `include_in_flight` also counts requests on their way to a reset right now (`complete`
        with an execution queued, `executing`, `awaiting_manual_reset`): otherwise a burst
        decided in one poll would all pass the limit before the first of them ran.
        """
        executed = and_(Request.executed_at.is_not(None), Request.executed_at >= since)
        in_flight = Request.state.in_([RequestState.COMPLETE.value, RequestState.EXECUTING.value,
                                       RequestState.AWAITING_MANUAL_RESET.value])
        query = select(func.count(Request.id)).where(
            or_(executed, in_flight) if include_in_flight else executed
        )
        if exclude_request_id is not None:
            query = query.where(Request.id != exclude_request_id)
        if municipality is not None:
            query = query.where(Request.municipality == municipality)
        if account_email is not None:
            query = query.where(func.lower(Request.account_email) == account_email.lower())
        return int(self.session.scalar(query) or 0)

    # --------------------------------------------------------------- executions
