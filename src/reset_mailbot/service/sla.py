"""The two-working-day promise, watched: warn before a deadline, alert once it has passed.

Deadlines are set when a request becomes complete (`service.inbox`, `domain.working_days`). This
job finds open requests whose deadline is near (within `[sla] warn_hours`) or past, and for each
one, exactly once per kind: sets `sla_warned_at` / `sla_breached_at`, writes an audit row, logs
`sla_warning` / `sla_breach`, and queues a short notice to `[sla] notify_address` (Forus
support, never the municipality; worded by rules/templates/sla_notice.*.j2 in
`[sla] notice_language`) through the outbox, so it is retried like any reply.

"Once" holds with several daemons too: the marker column is set by a conditional UPDATE
(`... WHERE sla_breached_at IS NULL`) and only the transaction that changed the row goes on.
A request first seen already past its deadline (the daemon was down) gets only the breach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.schema import Request
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.config import SlaSettings
from reset_mailbot.domain.lifecycle import SlaFlag, sla_flag
from reset_mailbot.domain.replies import (
    RenderedReply,
    ReplyData,
    ReplyKind,
    SlaFacts,
    make_message_id,
    render_notice,
)
from reset_mailbot.domain.reply_templates import ReplyTemplates
from reset_mailbot.logs import get_logger

log = get_logger("reset_mailbot.sla")

WARNING = "sla_warning"  # the audit and log event names (SlaFlag's values)
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
    message_id: str, settings: SlaSettings, templates: ReplyTemplates,
) -> RenderedReply:
    """The internal notice for Forus support, worded by rules/templates/sla_notice.*.j2 in
    `[sla] notice_language`: no personal data beyond the request id."""
    data = ReplyData(
        recipient=to_address, municipality=request.municipality, request_id=request.id,
        sla=SlaFacts(request_id=request.id, breach=kind == BREACH,
                     deadline=request.deadline_at or now, state=request.state,
                     working_days=settings.working_days),
    )
    return render_notice(
        data, from_address=from_address, now=now, message_id=message_id,
        language=settings.notice_language, timezone=settings.timezone, templates=templates,
    )


def _flag(
    store: Store, request_id: str, kind: str, settings: SlaSettings, now: datetime,
    from_address: str, templates: ReplyTemplates,
) -> bool:
    """Mark, audit, log and notify for one request in one transaction; False if already done."""
    with store.unit_of_work() as uow:
        if not uow.requests.claim_sla_marker(request_id, breach=kind == BREACH, now=now):
            return False
        request = uow.requests.get(request_id)
        assert request is not None
        deadline = request.deadline_at or now
        data = {"deadline_at": deadline.isoformat(), "state": request.state,
                "municipality": request.municipality, "working_days": settings.working_days}
        outbox_id: int | None = None
        if settings.notify_address:
            message_id = make_message_id(from_address.rpartition("@")[2] or "localhost")
            notice = notice_message(
                request, kind, from_address=from_address, to_address=settings.notify_address,
                now=now, message_id=message_id, settings=settings, templates=templates,
            )
            item = uow.outbox.queue(
                kind=ReplyKind.SLA_NOTICE, to_address=settings.notify_address,
                subject=notice.subject, body=notice.text, rfc822=notice.rfc822,
                reply_message_id=message_id, request=request, now=now,
            )
            outbox_id = item.id
        uow.audit_log.append(kind, request=request, now=now,
                             data={**data, "notice_outbox_id": outbox_id})
    hours = round((now - deadline).total_seconds() / 3600, 2)
    logger = log.error if kind == BREACH else log.warning
    logger(kind, request_id=request_id, municipality=data["municipality"],
           deadline_at=data["deadline_at"], state=data["state"], hours_past_deadline=hours,
           notified=outbox_id is not None)
    return True


def check_sla(
    store: Store, settings: SlaSettings, now: datetime, *, templates: ReplyTemplates,
    from_address: str | None = None,
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
        flag = sla_flag(deadline, now, warn_hours=settings.warn_hours)
        if flag is None:
            continue
        if not _flag(store, request_id, BREACH if flag is SlaFlag.BREACH else WARNING,
                     settings, now, sender, templates):
            continue
        (report.breached if flag is SlaFlag.BREACH else report.warned).append(request_id)
        report.notices += bool(settings.notify_address)
    return report
