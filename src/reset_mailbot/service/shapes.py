"""The JSON shapes of the views (`requests list|show`, `messages list|show`, `--json`), which
the web console's pages show too.

The shapes are documented in docs/cli-views.md and only ever grow: keys are added, never
renamed. Lists mask addresses (`j***@utrecht.nl`): they end up in screenshots and tickets;
details print them in full unless `--mask` is given.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from reset_mailbot.domain.addresses import mask_address
from reset_mailbot.domain.deadline_text import deadline_label, sla_status
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.domain.request_state import FINAL_STATES, RequestState
from reset_mailbot.logs import mask_text

if TYPE_CHECKING:
    from reset_mailbot.adapters.db.schema import (
        AuditEntry,
        Execution,
        Message,
        OutboxItem,
        Request,
    )
    from reset_mailbot.domain.message_text import ReadableText

#: the language of the deadline labels in the views (the command line speaks English)
LABEL_LANGUAGE = "en"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def is_overdue(request: Request, now: datetime) -> bool:
    return (request.deadline_at is not None and request.deadline_at < now
            and RequestState(request.state) not in FINAL_STATES)


def deadline_fields(request: Request, now: datetime, zone: ZoneInfo) -> dict[str, Any]:
    """`deadline_label` ("Wed 9 Dec, end of working day": the promised day, whose end the
    stored midnight is) and `sla_status` (on_time, due_today, overdue, closed, none)."""
    closed = RequestState(request.state) in FINAL_STATES
    return {
        "deadline_label": (deadline_label(request.deadline_at, zone, LABEL_LANGUAGE)
                           if request.deadline_at is not None else None),
        "sla_status": sla_status(request.deadline_at, now, zone, closed=closed),
    }


def _masked(value: str | None, mask: bool) -> str | None:
    return mask_address(value) if mask else value


def _masked_text(value: str | None, mask: bool) -> str | None:
    return mask_text(value) if mask and value else value


def request_row(
    request: Request, now: datetime, zone: ZoneInfo | None = None
) -> dict[str, Any]:
    """One request in `requests list --json` (addresses masked); with `zone` (`[sla]
    timezone`) also its `deadline_label` and `sla_status`."""
    extra = deadline_fields(request, now, zone) if zone is not None else {}
    return {
        "id": request.id,
        "state": request.state,
        "municipality": request.municipality,
        "sender": mask_address(request.sender),
        "account_email": mask_address(request.account_email),
        "created_at": _iso(request.created_at),
        "deadline_at": _iso(request.deadline_at),
        "overdue": is_overdue(request, now),
        "executed_at": _iso(request.executed_at),
        "closed_at": _iso(request.closed_at),
        "age_seconds": int((now - request.created_at).total_seconds()),
    } | extra


def _evidence(decision: dict[str, Any] | None) -> list[dict[str, Any]]:
    request = (decision or {}).get("request") or {}
    return [e for e in request.get("evidence") or [] if isinstance(e, dict)]


def message_detail(message: Message, mask: bool) -> dict[str, Any]:
    """A message as in `messages show --json` and inside `requests show --json`."""
    decision = message.decision or {}
    auth = decision.get("authentication") or {}
    return {
        "id": message.id,
        "message_id": message.message_id,
        "message_key": message.message_key,
        "received_at": _iso(message.received_at),
        "decided_at": _iso(message.decided_at),
        "attempts": message.attempts,
        "sender": _masked(message.sender, mask),
        "subject": message.subject,
        "outcome": message.outcome,
        "reasons": list(message.reasons or []),
        "missing": list(decision.get("missing") or []),
        "reply": bool(decision.get("reply")),
        "dkim": auth.get("dkim"),
        "signing_domain": auth.get("signing_domain"),
        "evidence": [
            {"item": e.get("item"), "kind": e.get("kind"),
             "text": _masked_text(e.get("text"), mask)}
            for e in _evidence(decision)
        ],
        "detail": decision.get("detail") or None,
        "error": message.error,
        "request_id": message.request_id,
        "mailbox": message.mailbox,
        "uid": message.uid,
        "folder": message.folder_moved_to,
        "moved_at": _iso(message.moved_at),
        "size": message.size,
        "raw_stored": message.raw is not None,
        "raw_purged_at": _iso(message.raw_purged_at),
    }


def audit_detail(entry: AuditEntry, mask: bool) -> dict[str, Any]:
    data = entry.data or {}
    if mask:
        data = json.loads(mask_text(json.dumps(data, ensure_ascii=False)))
    return {"id": entry.id, "at": _iso(entry.at), "event": entry.event, "actor": entry.actor,
            "request_id": entry.request_id, "message_id": entry.message_id, "data": data}


def reply_detail(item: OutboxItem, mask: bool) -> dict[str, Any]:
    return {
        "id": item.id, "kind": item.kind, "state": item.state,
        "to": _masked(item.to_address, mask), "subject": item.subject,
        "attempts": item.attempts, "created_at": _iso(item.created_at),
        "sent_at": _iso(item.sent_at), "next_attempt_at": _iso(item.next_attempt_at),
        "last_error": _masked_text(item.last_error, mask),
        "reply_message_id": item.reply_message_id, "message_id": item.message_id,
        "instance": item.claimed_by,  # the daemon that sent it (or is sending it)
    }


def reply_row(item: OutboxItem) -> dict[str, Any]:
    """One reply in `replies list --json` (the recipient masked)."""
    return {
        "id": item.id, "request_id": item.request_id, "kind": item.kind,
        "to": mask_address(item.to_address), "subject": item.subject, "state": item.state,
        "attempts": item.attempts, "created_at": _iso(item.created_at),
        "sent_at": _iso(item.sent_at), "next_attempt_at": _iso(item.next_attempt_at),
        "last_error": mask_text(item.last_error) if item.last_error else None,
    }


def body_detail(text: ReadableText, mask: bool) -> dict[str, Any]:
    """What the sender wrote (`messages show --body --json`)."""
    return {
        "subject": text.subject,
        "new_text": _masked_text(text.new_text, mask),
        "quoted": _masked_text(text.quoted, mask),
        "quoted_lines": text.quoted_lines,
        "truncated": text.truncated,
    }


def execution_detail(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id, "state": execution.state, "attempts": execution.attempts,
        "idempotency_key": execution.idempotency_key, "result_code": execution.result_code,
        "detail": execution.detail, "created_at": _iso(execution.created_at),
        "finished_at": _iso(execution.finished_at),
        "next_attempt_at": _iso(execution.next_attempt_at),
        "instance": execution.claimed_by,  # the daemon that ran it (or is running it)
    }


def request_detail(
    request: Request, now: datetime, mask: bool, zone: ZoneInfo | None = None
) -> dict[str, Any]:
    extra = deadline_fields(request, now, zone) if zone is not None else {}
    return {
        "id": request.id,
        "state": request.state,
        "municipality": request.municipality,
        "sender": _masked(request.sender, mask),
        "account_email": _masked(request.account_email, mask),
        "case_reference": request.case_reference,
        "identity_verified": request.identity_verified,
        "reset_instructed": request.reset_instructed,
        "missing": list(request.missing or []),
        "missing_details": dict(request.missing_details or {}),
        "evidence": [
            {"item": e.get("item"), "kind": e.get("kind"),
             "text": _masked_text(e.get("text"), mask)}
            for e in request.evidence or [] if isinstance(e, dict)
        ],
        "language": request.language,
        "created_at": _iso(request.created_at),
        "completed_at": _iso(request.completed_at),
        "deadline_at": _iso(request.deadline_at),
        "overdue": is_overdue(request, now),
        "sla_warned_at": _iso(request.sla_warned_at),
        "sla_breached_at": _iso(request.sla_breached_at),
        "executed_at": _iso(request.executed_at),
        "closed_at": _iso(request.closed_at),
        "result_code": request.result_code,
        "result_detail": _masked_text(request.result_detail, mask),
        "approved_by": request.approved_by,
        "approved_at": _iso(request.approved_at),
        "denied_by": request.denied_by,
        "denied_at": _iso(request.denied_at),
        "anonymised_at": _iso(request.anonymised_at),
    } | extra


def message_row(message: Message) -> dict[str, Any]:
    """One message in `messages list --json` (sender masked, no subject)."""
    return {
        "id": message.id,
        "received_at": _iso(message.received_at),
        "sender": mask_address(message.sender),
        "outcome": message.outcome,
        "reasons": list(message.reasons or []),
        "error": message.error is not None,
        "request_id": message.request_id,
        "folder": message.folder_moved_to,
        "attempts": message.attempts,
    }


def why_filed(m: dict[str, Any]) -> str | None:
    """A sentence on why a message is where it is (quarantine especially)."""
    if m["error"] is not None and m["outcome"] is None:
        return "processing failed (see error); quarantined until `messages reprocess`"
    if m["outcome"] == Outcome.REJECTED and not m["reply"]:
        return "rejected without a reply (not authentic or not allowed); quarantined"
    if m["outcome"] == Outcome.DEFERRED:
        return "deferred (temporary failure): stays in the inbox and is decided again"
    return None

