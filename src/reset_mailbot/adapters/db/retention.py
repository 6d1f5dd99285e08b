"""The retention job's statements (service/retention.py says what and why): bulk-delete old
raw bytes, anonymise old requests with their messages, replies, executions and audit rows.

The audit log is append-only for the ORM; this module is the one deliberate exception: it
rewrites audit rows' data with an explicit Core UPDATE and then appends a
`retention_anonymised` audit event saying what was rewritten.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from reset_mailbot.adapters.db.outbox import OutboxState
from reset_mailbot.adapters.db.schema import AuditEntry, Execution, Message, OutboxItem, Request
from reset_mailbot.adapters.db.unit_of_work import UnitOfWork
from reset_mailbot.domain.anonymise import (
    ANONYMISED,
    anonymise_address,
    anonymise_text,
    scrub,
    scrub_decision,
)
from reset_mailbot.domain.request_state import FINAL_STATES, RequestState

ANONYMISED_EVENT = "retention_anonymised"
RAW_PURGED_EVENT = "retention_raw_purged"
_ANONYMISABLE_STATES = [s.value for s in FINAL_STATES] + [RequestState.INCOMPLETE.value]


def purge_rows(
    uow: UnitOfWork, now: datetime, raw_before: datetime, anonymise_before: datetime
) -> dict[str, int]:
    session = uow.session
    counts = {
        "raw_purged": 0, "requests_anonymised": 0, "requests_kept_open": 0,
        "messages_anonymised": 0, "outbox_anonymised": 0, "executions_anonymised": 0,
        "audit_anonymised": 0,
    }
    # 1. raw bytes: one bulk UPDATE
    result = session.execute(
        update(Message)
        .where(Message.raw.is_not(None), Message.received_at < raw_before)
        .values(raw=None, raw_purged_at=now)
        .execution_options(synchronize_session=False)
    )
    counts["raw_purged"] = result.rowcount or 0
    if counts["raw_purged"]:
        uow.audit_log.append(RAW_PURGED_EVENT, now=now, data={
            "messages": counts["raw_purged"], "received_before": raw_before.isoformat(),
        })

    # 2. requests old enough that can no longer change
    old = select(Request).where(
        Request.anonymised_at.is_(None), Request.created_at < anonymise_before
    )
    counts["requests_kept_open"] = int(session.scalar(
        select(func.count(Request.id)).where(
            Request.anonymised_at.is_(None), Request.created_at < anonymise_before,
            Request.state.not_in(_ANONYMISABLE_STATES),
        )
    ) or 0)
    requests = list(session.scalars(
        old.where(Request.state.in_(_ANONYMISABLE_STATES)).order_by(Request.created_at)
    ))
    for request in requests:
        message_ids = list(session.scalars(
            select(Message.id).where(Message.request_id == request.id)
        ))
        done = anonymise_rows(uow, now, request_id=request.id, message_ids=message_ids)
        request.sender = anonymise_address(request.sender) or ANONYMISED
        request.account_email = anonymise_address(request.account_email)
        request.case_reference = ANONYMISED if request.case_reference else None
        request.evidence = scrub(request.evidence or [])
        request.result_detail = ANONYMISED if request.result_detail else None  # free text
        request.approved_by = ANONYMISED if request.approved_by else None
        request.denied_by = ANONYMISED if request.denied_by else None
        request.anonymised_at = now
        session.flush()
        uow.audit_log.append(ANONYMISED_EVENT, request=request, now=now, data=done)
        counts["requests_anonymised"] += 1
        for key, value in done.items():
            counts[f"{key}_anonymised"] += value

    # 3. old messages without a request, not anonymised before (no retention event yet)
    already = select(AuditEntry.message_id).where(
        AuditEntry.event == ANONYMISED_EVENT, AuditEntry.message_id.is_not(None)
    )
    loose = list(session.scalars(
        select(Message.id).where(
            Message.request_id.is_(None), Message.received_at < anonymise_before,
            Message.id.not_in(already),
        ).order_by(Message.id)
    ))
    for message_id in loose:
        done = anonymise_rows(uow, now, request_id=None, message_ids=[message_id])
        uow.audit_log.append(ANONYMISED_EVENT, message=message_id, now=now, data=done)
        for key, value in done.items():
            counts[f"{key}_anonymised"] += value
    return counts


def anonymise_rows(
    uow: UnitOfWork, now: datetime, *, request_id: str | None, message_ids: list[int]
) -> dict[str, int]:
    """Anonymise the messages, replies, executions and audit rows of one request or message."""
    session = uow.session
    session.flush()
    for message in session.scalars(select(Message).where(Message.id.in_(message_ids))):
        message.sender = anonymise_address(message.sender)
        message.subject = None
        message.decision = scrub_decision(message.decision)
        message.error = anonymise_text(message.error)
        message.raw = None
        if message.raw_purged_at is None:
            message.raw_purged_at = now

    owner_outbox = OutboxItem.message_id.in_(message_ids)
    if request_id is not None:
        owner_outbox = owner_outbox | (OutboxItem.request_id == request_id)
    outbox = list(session.scalars(select(OutboxItem).where(owner_outbox)))
    for item in outbox:
        if item.state in (OutboxState.QUEUED, OutboxState.SENDING):
            item.state = OutboxState.FAILED  # never send an emptied reply
            item.next_attempt_at = None
            item.last_error = "anonymised by retention before it was sent"
        item.to_address = anonymise_address(item.to_address) or ANONYMISED
        item.subject = ANONYMISED
        item.body = ANONYMISED
        item.rfc822 = b""
        item.last_error = anonymise_text(item.last_error)

    executions: list[Execution] = []
    if request_id is not None:
        executions = list(session.scalars(
            select(Execution).where(Execution.request_id == request_id)
        ))
        for execution in executions:
            execution.detail = ANONYMISED if execution.detail else None  # executor free text

    # The audit rows: the explicit Core UPDATE the audit log reserves for retention.
    session.flush()
    owner_audit = AuditEntry.message_id.in_(message_ids)
    if request_id is not None:
        owner_audit = owner_audit | (AuditEntry.request_id == request_id)
    rows = session.execute(
        select(AuditEntry.id, AuditEntry.actor, AuditEntry.data).where(
            owner_audit, AuditEntry.event != ANONYMISED_EVENT
        )
    ).all()
    table = AuditEntry.__table__
    for row_id, actor, data in rows:
        session.execute(
            update(table).where(table.c.id == row_id).values(
                data=scrub(data or {}),
                actor=actor if actor == "system" else ANONYMISED,
            )
        )
    return {
        "messages": len(message_ids),
        "outbox": len(outbox),
        "executions": len(executions),
        "audit": len(rows),
    }
