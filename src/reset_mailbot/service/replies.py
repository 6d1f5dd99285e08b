"""Queueing replies: build the full RFC 5322 bytes now, store them, send later (delivery.py).

The Message-ID is generated and stored before the first send attempt, so a rare re-send after a
crash is byte-identical and recognisably the same message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from reset_mailbot.adapters.db.schema import Message, Request
from reset_mailbot.adapters.db.unit_of_work import UnitOfWork
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Item, MissingDetail
from reset_mailbot.domain.replies import (
    NOTICE_REASONS,
    ReplyData,
    ReplyKind,
    make_message_id,
    render_reply,
)
from reset_mailbot.domain.reply_templates import ReplyTemplates
from reset_mailbot.logs import get_logger

log = get_logger("reset_mailbot.replies")


_THREAD_FIELDS = {"subject", "message_id", "references", "in_reply_to"}


def reply_data_for_request(
    request: Request, decision: Decision | None = None, **overrides: Any
) -> ReplyData:
    """Reply data for a request: its merged items, threaded on its latest message."""
    # Only the threading fields are needed; a stored decision is read as it is rather than
    # validated again as a whole (evidence and all).
    if decision is not None:
        stored: dict[str, Any] = decision.model_dump(mode="json", include=_THREAD_FIELDS)
    else:
        stored = (request.messages[-1].decision or {}) if request.messages else {}
    references = stored.get("references") or []
    thread = {
        "subject": str(stored.get("subject") or ""),
        "message_id": stored.get("message_id"),
        "references": tuple(r for r in references if isinstance(r, str)),
        "in_reply_to": stored.get("in_reply_to"),
    } if stored else {}
    values: dict[str, Any] = {
        "request_id": request.id,
        "notices": tuple(r.value for r in decision.reasons if r in NOTICE_REASONS)
        if decision is not None else (),
        "stopped_at": dict(decision.request.stopped_at) if decision is not None else {},
        "recipient": request.sender,
        "account_email": request.account_email,
        "case_reference": request.case_reference,
        "municipality": request.municipality,
        "missing": tuple(Item(m) for m in (request.missing or [])),
        "missing_details": {
            Item(k): MissingDetail(v) for k, v in (request.missing_details or {}).items()
        },
    }
    values |= thread
    values |= overrides
    return ReplyData(**values)


def queue_reply(
    uow: UnitOfWork,
    kind: ReplyKind,
    data: ReplyData,
    *,
    support_address: str,
    now: datetime,
    request: Request | None = None,
    message: Message | None = None,
    max_per_hour: int | None = None,
    language: str | None = None,
    templates: ReplyTemplates,
) -> bool:
    """Queue a reply; False (and an audit row) when the sender's hourly limit is reached.

    Language: `language` if given, else the request's, else Dutch. `templates`: the loaded
    rule set's (`RuleSet.templates`).
    """
    if max_per_hour is not None:
        sent = uow.outbox.count_replies_to(data.recipient, now - timedelta(hours=1))
        if sent >= max_per_hour:
            uow.audit_log.append(
                "reply_rate_limited", request=request, message=message, now=now,
                data={"kind": kind.value, "to": data.recipient, "replies_last_hour": sent},
            )
            log.warning(
                "rate_limited", kind=kind.value, to=data.recipient, replies_last_hour=sent,
                request_id=request.id if request is not None else None,
            )
            return False
    reply_id = make_message_id(support_address.rpartition("@")[2])
    if language is None:
        language = (request.language if request is not None else None) or "nl"
    reply = render_reply(
        kind, data, support_address=support_address, now=now, reply_message_id=reply_id,
        language=language, templates=templates,
    )
    uow.outbox.queue(
        kind=kind.value,
        to_address=data.recipient,
        subject=reply.subject,
        body=reply.text,
        rfc822=reply.rfc822,
        reply_message_id=reply_id,
        request=request,
        message=message,
        now=now,
    )
    return True
