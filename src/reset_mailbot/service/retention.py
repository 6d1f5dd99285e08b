"""Retention (AVG/GDPR, issue #6 item 5): forget what we no longer need, keep the statistics.

Two periods from `[retention]`, both counted from when a message was received / a request was
created:

* after `raw_message_days` the stored raw bytes of a message are deleted (`messages.raw = NULL`,
  `raw_purged_at = now`); the decision JSON stays, so the message is still explainable, but it
  can no longer be reprocessed;
* after `request_days` the personal data is anonymised: in requests (sender, account e-mail,
  evidence text, case reference, staff names, free-text results), in their messages (sender,
  subject, personal fields of the decision JSON, error text), in the replies (recipient,
  subject, body, bytes), in execution details and in the audit rows' data and actor. Counts,
  outcomes, reason codes, states, municipality, kinds and every timestamp are kept, so
  `reset-mailbot stats` over old periods still adds up.

An address becomes `***@domain` (the domain is the municipality or a mail provider: useful for
statistics, not personal); free text that may hold names becomes `[anonymised]`.

A request is anonymised only once it can no longer change: in a final state, or still
`incomplete` (it never got far enough to act on). An open request older than `request_days`
(awaiting a person, say) is kept and counted in `requests_kept_open`, because executing it
needs the account address. A message without a request is anonymised on its own.

The audit log is append-only for the ORM; this module is the one deliberate exception: it
rewrites audit rows' data with an explicit Core UPDATE and then appends a
`retention_anonymised` audit event (per request, or per message without a request) saying what
was rewritten. That event is also what makes the job idempotent: a message that has one is not
touched again, a request has `anonymised_at` set. A dry run executes the very same statements
and rolls the transaction back, so its counts are exactly what a real run would do.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from reset_mailbot.adapters.db.repository import OutboxState, Store, UnitOfWork
from reset_mailbot.adapters.db.schema import (
    AuditEntry,
    Execution,
    Message,
    OutboxItem,
    Request,
)
from reset_mailbot.config import RetentionSettings
from reset_mailbot.domain.request_state import FINAL_STATES, RequestState
from reset_mailbot.logs import get_logger

log = get_logger("reset_mailbot.retention")

ANONYMISED = "[anonymised]"
ANONYMISED_EVENT = "retention_anonymised"
RAW_PURGED_EVENT = "retention_raw_purged"

# bounded like logs._EMAIL_RE: linear on hostile text
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@([A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63})")
# JSON keys whose string value is personal as a whole (names, addresses, quoted text).
_PERSONAL_KEYS = frozenset({
    "sender", "address", "account_email", "to", "to_address", "recipient", "requested_by",
    "requested_by_name", "approved_by", "denied_by", "case_reference", "text", "subject",
    "body", "reason", "detail", "error", "name", "email", "notify_address",
})
# Keys that look like addresses but are protocol identifiers (policy: Message-IDs are not
# personal), or structural values that reuse a personal-sounding key name.
_NOT_PERSONAL_KEYS = frozenset({
    "message_id", "message_key", "reply_message_id", "in_reply_to", "references",
    "idempotency_key",
})
# State names stored under "to"/"from" in `state_changed`: values, not people.
_STATE_VALUES = frozenset(s.value for s in RequestState)
_ANONYMISABLE_STATES = [s.value for s in FINAL_STATES] + [RequestState.INCOMPLETE.value]


@dataclass(frozen=True)
class PurgeReport:
    """What one run did (or, with `dry_run`, would do)."""

    now: datetime
    dry_run: bool
    raw_before: datetime  # raw bytes of messages received before this are deleted
    anonymise_before: datetime  # requests/messages created/received before this are anonymised
    raw_purged: int = 0
    requests_anonymised: int = 0
    requests_kept_open: int = 0
    messages_anonymised: int = 0
    outbox_anonymised: int = 0
    executions_anonymised: int = 0
    audit_anonymised: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("now", "raw_before", "anonymise_before"):
            data[key] = data[key].isoformat()
        return data


class _Rollback(Exception):
    """Raised inside the unit of work of a dry run so that nothing is committed."""


# ----------------------------------------------------------------------------- scrubbing


def anonymise_address(address: str | None) -> str | None:
    """`j.devries@utrecht.nl` -> `***@utrecht.nl`; no address stays None."""
    if not address:
        return address
    _local, sep, domain = address.strip().rpartition("@")
    return f"***@{domain.lower()}" if sep and domain else ANONYMISED


def anonymise_text(text: str | None) -> str | None:
    """Remove every address from free text (the rest is kept: error codes, sizes)."""
    if text is None:
        return None
    return _EMAIL_RE.sub(lambda m: f"***@{m.group(1).lower()}", text)


def scrub(value: Any, key: str | None = None) -> Any:
    """A JSON value with personal data replaced; structure, codes and numbers are kept."""
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, key) for v in value]
    if not isinstance(value, str) or key in _NOT_PERSONAL_KEYS:
        return value
    if key in _PERSONAL_KEYS:
        if key == "to" and value in _STATE_VALUES:
            return value
        if "@" in value and _EMAIL_RE.fullmatch(value.strip()):
            return anonymise_address(value)
        return ANONYMISED if value else value
    if "@" in value and _EMAIL_RE.search(value):
        # an address under a key we do not know: the text around it may be a name
        return anonymise_address(value) if _EMAIL_RE.fullmatch(value.strip()) else ANONYMISED
    return value


def scrub_decision(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored decision JSON without personal fields (sender address, items, evidence)."""
    if decision is None:
        return None
    return scrub(decision)


# ------------------------------------------------------------------------------- the job


def purge(
    store: Store, settings: RetentionSettings, now: datetime, dry_run: bool = False
) -> PurgeReport:
    """Delete old raw bytes and anonymise old personal data; idempotent. See the module doc.

    Called daily by the daemon and by `reset-mailbot purge`. Runs in one transaction.
    """
    raw_before = now - timedelta(days=settings.raw_message_days)
    anonymise_before = now - timedelta(days=settings.request_days)
    counts: dict[str, int] = {}
    try:
        with store.unit_of_work() as uow:
            counts = _purge(uow, now, raw_before, anonymise_before)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    report = PurgeReport(
        now=now, dry_run=dry_run, raw_before=raw_before, anonymise_before=anonymise_before,
        **counts,
    )
    log.info("retention_purged", **report.as_json())
    return report


def _purge(
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
        uow.audit(RAW_PURGED_EVENT, now=now, data={
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
        done = _anonymise_rows(uow, now, request_id=request.id, message_ids=message_ids)
        request.sender = anonymise_address(request.sender) or ANONYMISED
        request.account_email = anonymise_address(request.account_email)
        request.case_reference = ANONYMISED if request.case_reference else None
        request.evidence = scrub(request.evidence or [])
        request.result_detail = ANONYMISED if request.result_detail else None  # free text
        request.approved_by = ANONYMISED if request.approved_by else None
        request.denied_by = ANONYMISED if request.denied_by else None
        request.anonymised_at = now
        session.flush()
        uow.audit(ANONYMISED_EVENT, request=request, now=now, data=done)
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
        done = _anonymise_rows(uow, now, request_id=None, message_ids=[message_id])
        uow.audit(ANONYMISED_EVENT, message=message_id, now=now, data=done)
        for key, value in done.items():
            counts[f"{key}_anonymised"] += value
    return counts


def _anonymise_rows(
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

    # The audit rows: the explicit Core UPDATE the repository reserves for retention.
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
