"""The console's read-only pages: requests, a request's story, filed messages, replies, stats.

Lists mask addresses like the CLI's lists (they end up in screenshots); a request's or a
message's own page shows them in full, since support staff need them to call back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reset_mailbot.adapters.db import queries
from reset_mailbot.console.charts import bar_chart, weekly
from reset_mailbot.console.highlight import highlight
from reset_mailbot.console.roles import Role
from reset_mailbot.console.web import deps, guard, local, refused, render
from reset_mailbot.domain.addresses import mask_address
from reset_mailbot.domain.deadline_text import deadline_label, sla_status
from reset_mailbot.domain.reasons import reason_text
from reset_mailbot.domain.request_state import FINAL_STATES, RequestState
from reset_mailbot.service.shapes import (
    audit_detail,
    execution_detail,
    message_detail,
    reply_detail,
    request_detail,
    why_filed,
)

MESSAGE_VIEWS = ("quarantine", "ignored", "rejected", "deferred", "all")
SLA_WORDS = {"on_time": "on time", "due_today": "due today", "overdue": "overdue",
             "closed": "closed", "none": "-"}


def _since(request: Request, value: str | None) -> datetime | None:
    """A date (or date-time) typed in the form: the start of that day in `[sla] timezone`,
    where support works - not the server's own zone."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=deps(request).tz)


def _sla(request: Request, row: Any, now: datetime) -> str:
    closed = RequestState(row.state) in FINAL_STATES
    return sla_status(row.deadline_at, now, deps(request).tz, closed=closed)


def _deadline(request: Request, value: datetime | None) -> str:
    return deadline_label(value, deps(request).tz) if value is not None else "-"


@guard(Role.VIEWER)
def requests_page(request: Request) -> Response:
    d = deps(request)
    params = request.query_params
    state = params.get("state") or None
    if state is not None and state not in {s.value for s in RequestState}:
        state = None
    municipality = (params.get("municipality") or "").strip() or None
    overdue = params.get("overdue") == "1"
    since_text = params.get("since") or ""
    since = _since(request, since_text)
    now = d.clock()
    with d.store.unit_of_work() as uow:
        rows = queries.list_requests(uow, state=state, municipality=municipality, since=since,
                                     overdue_at=now if overdue else None,
                                     limit=d.settings.page_size)
        items = [{
            "id": r.id, "received": local(request, r.created_at),
            "municipality": r.municipality or "-", "sender": mask_address(r.sender) or "-",
            "account": mask_address(r.account_email) or "-", "state": r.state,
            "deadline": _deadline(request, r.deadline_at), "sla": _sla(request, r, now),
        } for r in rows]
    return render(request, "requests.html", items=items, states=[s.value for s in RequestState],
                  state=state or "", municipality=municipality or "", overdue=overdue,
                  since=since_text if since else "", sla_words=SLA_WORDS,
                  page_size=d.settings.page_size)


def _message_view(request: Request, message: Any, evidence_source: list[dict]) -> dict:
    """A message as the detail pages show it: what the sender wrote, quotes folded away,
    evidence sentences highlighted."""
    from reset_mailbot.domain.message_text import readable_text

    data = message_detail(message, mask=False)
    data["received"] = local(request, message.received_at)
    data["reason_words"] = [(code, reason_text(code)) for code in data["reasons"]]
    data["why"] = why_filed(data)
    raw = message.raw
    if raw is None:
        data["text"] = None
        return data
    readable = readable_text(raw, deps(request).extraction)
    segments, unplaced = highlight(readable.new_text, evidence_source)
    data["text"] = {"segments": segments, "unplaced": unplaced, "quoted": readable.quoted,
                    "truncated": readable.truncated}
    return data


@guard(Role.VIEWER)
def request_page(request: Request) -> Response:
    d = deps(request)
    request_id = request.path_params["request_id"]
    now = d.clock()
    with d.store.unit_of_work() as uow:
        story = queries.request_story(uow, request_id)
        if story is None:
            return refused(request, f"no request {request_id}", status_code=404)
        detail = request_detail(story, now, mask=False)
        detail["deadline"] = _deadline(request, story.deadline_at)
        detail["sla"] = _sla(request, story, now)
        timeline: list[dict[str, Any]] = []
        for message in story.messages:
            timeline.append({"at": message.received_at, "kind": "message",
                             "message": _message_view(request, message,
                                                      _evidence_rules(message.decision))})
        for item in story.outbox:
            reply = reply_detail(item, mask=False)
            reply["body"] = item.body
            timeline.append({"at": item.created_at, "kind": "reply", "reply": reply})
        for execution in story.executions:
            timeline.append({"at": execution.created_at, "kind": "execution",
                             "execution": execution_detail(execution)})
        for entry in story.audit:
            timeline.append({"at": entry.at, "kind": "audit",
                             "audit": audit_detail(entry, mask=False)})
            # a "thanks" after the request closed is not one of its messages: show its text
            followup = (uow.messages.get(entry.message_id)
                        if entry.event == "followup_received" and entry.message_id else None)
            if followup is not None:
                view = _message_view(request, followup, [])
                view["followup"] = True
                timeline.append({"at": followup.received_at, "kind": "message",
                                 "message": view})
        order = {"message": 0, "audit": 1, "execution": 2, "reply": 3}
        timeline.sort(key=lambda e: (e["at"], order[e["kind"]]))
        for entry in timeline:
            entry["when"] = local(request, entry["at"], "%Y-%m-%d %H:%M:%S")
    return render(request, "request.html", r=detail, timeline=timeline, sla_words=SLA_WORDS,
                  actions=_actions_for(detail["state"]))


def _evidence_rules(decision: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = ((decision or {}).get("request") or {}).get("evidence") or []
    return [e for e in found if isinstance(e, dict)]


def _actions_for(state: str) -> list[tuple[str, str, Role]]:
    """(path, label, role) of the actions this state allows."""
    if state == RequestState.AWAITING_APPROVAL:
        return [("approve", "Approve", Role.APPROVER), ("deny", "Deny", Role.APPROVER)]
    if state == RequestState.AWAITING_MANUAL_RESET:
        return [("done", "Mark reset done", Role.OPERATOR),
                ("failed", "Mark reset failed", Role.OPERATOR)]
    return []


@guard(Role.VIEWER)
def messages_page(request: Request) -> Response:
    d = deps(request)
    view = request.query_params.get("view") or "quarantine"
    if view not in MESSAGE_VIEWS:
        view = "quarantine"
    with d.store.unit_of_work() as uow:
        rows = queries.filed_messages(uow, view=view, quarantine_folder=d.quarantine_folder,
                                      limit=d.settings.page_size)
        items = []
        for m in rows:
            detail = message_detail(m, mask=True)
            items.append({
                "id": m.id, "received": local(request, m.received_at),
                "sender": mask_address(m.sender) or "-", "outcome": m.outcome or "failed",
                "reasons": [(c, reason_text(c)) for c in m.reasons or []],
                "why": why_filed(detail) or "",
                "request_id": m.request_id, "folder": m.folder_moved_to or "-",
            })
    return render(request, "messages.html", items=items, view=view, views=MESSAGE_VIEWS)


@guard(Role.VIEWER)
def message_page(request: Request) -> Response:
    d = deps(request)
    message_id = request.path_params["message_id"]
    with d.store.unit_of_work() as uow:
        message = uow.messages.get(message_id)
        if message is None:
            return refused(request, f"no message {message_id}", status_code=404)
        evidence = _evidence_rules(message.decision)
        view = _message_view(request, message, evidence)
    from reset_mailbot.service.reprocess import refusal

    with d.store.unit_of_work() as uow:
        message = uow.messages.get(message_id)
        assert message is not None
        blocked = refusal(message)
    return render(request, "message.html", m=view, reprocess_refusal=blocked)


@guard(Role.VIEWER)
def replies_page(request: Request) -> Response:
    d = deps(request)
    failed_only = request.query_params.get("failed") == "1"
    with d.store.unit_of_work() as uow:
        rows = uow.outbox.listing(state="failed" if failed_only else None,
                                  limit=d.settings.page_size)
        items = [{**reply_detail(r, mask=True), "request_id": r.request_id,
                  "created": local(request, r.created_at)} for r in rows]
    return render(request, "replies.html", items=items, failed_only=failed_only)


@guard(Role.VIEWER)
def stats_page(request: Request) -> Response:
    d = deps(request)
    now = d.clock()
    since_text = request.query_params.get("since") or ""
    since = _since(request, since_text)
    weeks = 12
    with d.store.unit_of_work() as uow:
        figures = queries.stats(uow, since)
        times = queries.request_times(uow, now - timedelta(weeks=weeks + 1))
    chart_weeks = weekly(times, d.tz, now.astimezone(d.tz).date(), weeks)
    median = figures["requests"]["median_seconds_to_reset"]
    return render(request, "stats.html", s=figures, chart=bar_chart(chart_weeks),
                  weeks=chart_weeks, since=since_text if since else "",
                  median_hours=None if median is None else median / 3600,
                  reason_text=reason_text)
