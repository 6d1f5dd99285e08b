"""The two-working-day promise, watched: warn before a deadline, alert once it has passed.

Deadlines are set when a request becomes complete (`service.inbox`, `domain.working_days`). This
job finds open requests whose deadline is near (within `[sla] warn_hours`) or past, and for each
one, exactly once per kind: sets `sla_warned_at` / `sla_breached_at`, writes an audit row, logs
`sla_warning` / `sla_breach`, and queues a short plain-text notice to `[sla] notify_address`
(Forus support, never the municipality) through the outbox, so it is retried like any reply.

"Once" holds with several daemons too: the marker column is set by a conditional UPDATE
(`... WHERE sla_breached_at IS NULL`) and only the transaction that changed the row goes on.
A request first seen already past its deadline (the daemon was down) gets only the breach.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.repository import ReplyKind, Store
from reset_mailbot.adapters.db.schema import Request
from reset_mailbot.config import SlaSettings
from reset_mailbot.logs import get_logger

log = get_logger("reset_mailbot.sla")

WARNING = "sla_warning"
BREACH = "sla_breach"


@dataclass
class SlaReport:
    """What one check found and did (ids of requests newly warned / breached)."""

    checked: int = 0
    warned: list[str] = field(default_factory=list)
    breached: list[str] = field(default_factory=list)
    notices: int = 0


def notice_message(
    request: Request, kind: str, *, from_address: str, to_address: str, now: datetime,
    timezone: str,
) -> EmailMessage:
    """The internal notice for Forus support: plain text, no personal data beyond the id."""
    deadline = request.deadline_at or now
    local = deadline.astimezone(ZoneInfo(timezone))
    what = "past its deadline" if kind == BREACH else "close to its deadline"
    label = "SLA breach" if kind == BREACH else "SLA warning"
    hours = (now - deadline).total_seconds() / 3600
    timing = f"{hours:.1f} hours overdue" if hours >= 0 else f"due in {-hours:.1f} hours"
    body = (
        f"Reset request {request.id} is {what} (two working days promise).\n\n"
        f"Request:      {request.id}\n"
        f"Municipality: {request.municipality or '-'}\n"
        f"Deadline:     {local:%Y-%m-%d %H:%M %Z} ({deadline:%Y-%m-%d %H:%M} UTC)\n"
        f"State:        {request.state}\n"
        f"Status:       {timing}\n\n"
        f"See the whole story with: reset-mailbot requests show {request.id}\n"
    )
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = to_address
    message["Subject"] = f"[reset-mailbot] {label}: {request.id} ({request.municipality or '-'})"
    message["Date"] = email.utils.format_datetime(now.astimezone(UTC))
    domain = from_address.rpartition("@")[2] or "localhost"
    message["Message-ID"] = email.utils.make_msgid("rmb-sla", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Reset-Mailbot"] = ReplyKind.SLA_NOTICE
    message.set_content(body)
    return message


def _flag(
    store: Store, request_id: str, kind: str, settings: SlaSettings, now: datetime,
    from_address: str,
) -> bool:
    """Mark, audit, log and notify for one request in one transaction; False if already done."""
    with store.unit_of_work() as uow:
        if not uow.claim_sla_marker(request_id, breach=kind == BREACH, now=now):
            return False
        request = uow.get_request(request_id)
        assert request is not None
        deadline = request.deadline_at or now
        data = {"deadline_at": deadline.isoformat(), "state": request.state,
                "municipality": request.municipality, "working_days": settings.working_days}
        outbox_id: int | None = None
        if settings.notify_address:
            message = notice_message(
                request, kind, from_address=from_address, to_address=settings.notify_address,
                now=now, timezone=settings.timezone,
            )
            item = uow.queue_reply(
                kind=ReplyKind.SLA_NOTICE, to_address=settings.notify_address,
                subject=str(message["Subject"]), body=message.get_content(),
                rfc822=message.as_bytes(), reply_message_id=str(message["Message-ID"]),
                request=request, now=now,
            )
            outbox_id = item.id
        uow.audit(kind, request=request, now=now, data={**data, "notice_outbox_id": outbox_id})
    hours = round((now - deadline).total_seconds() / 3600, 2)
    logger = log.error if kind == BREACH else log.warning
    logger(kind, request_id=request_id, municipality=data["municipality"],
           deadline_at=data["deadline_at"], state=data["state"], hours_past_deadline=hours,
           notified=outbox_id is not None)
    return True


def check_sla(
    store: Store, settings: SlaSettings, now: datetime, *, from_address: str | None = None
) -> SlaReport:
    """Warn about and flag breaches of open requests' deadlines; each at most once per request.

    `from_address` is the From of the notice (the support address, which the SMTP envelope
    uses too); without it the notice comes from `notify_address` itself.
    """
    report = SlaReport()
    horizon = now + timedelta(hours=settings.warn_hours)
    with store.unit_of_work() as uow:
        candidates = queries.open_near_deadline(uow, horizon)
    sender = from_address or settings.notify_address or "reset-mailbot@localhost"
    for request_id, deadline in candidates:
        report.checked += 1
        if deadline <= now:
            if _flag(store, request_id, BREACH, settings, now, sender):
                report.breached.append(request_id)
                report.notices += bool(settings.notify_address)
        elif settings.warn_hours > 0 and _flag(store, request_id, WARNING, settings, now, sender):
            report.warned.append(request_id)
            report.notices += bool(settings.notify_address)
    return report
