"""Read models: the questions the service and the views ask the database, answered here so that
no SQL lives outside adapters/db (issue #13). Each takes an open unit of work and returns plain
values; the stores of a unit of work (unit_of_work.py) keep the writes and the claim
queues.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from reset_mailbot.adapters.db.bound import SYSTEM
from reset_mailbot.adapters.db.outbox import OutboxState
from reset_mailbot.adapters.db.schema import AuditEntry, Message, OutboxItem, Request
from reset_mailbot.adapters.db.unit_of_work import UnitOfWork
from reset_mailbot.domain.request_state import FINAL_STATES, RequestState


@dataclass(frozen=True)
class Gauges:
    """What the metrics endpoint shows of the database, read in one transaction."""

    requests_by_state: dict[str, int]
    overdue: int
    outbox_length: int


def gauges(uow: UnitOfWork, now: datetime) -> Gauges:
    session = uow.session
    by_state = dict(session.execute(
        select(Request.state, func.count(Request.id)).group_by(Request.state)
    ).all())
    overdue = session.scalar(select(func.count(Request.id)).where(
        Request.deadline_at.is_not(None), Request.deadline_at < now,
        Request.state.not_in([s.value for s in FINAL_STATES]),
    ))
    outbox = session.scalar(select(func.count(OutboxItem.id)).where(
        OutboxItem.state.in_([OutboxState.QUEUED, OutboxState.SENDING])
    ))
    return Gauges({str(k): int(v) for k, v in by_state.items()}, int(overdue or 0),
                  int(outbox or 0))


@dataclass(frozen=True)
class ManualOutcomes:
    """Resets a person recorded (`requests done` / `failed`) after audit row `after`."""

    last_id: int
    done: int = 0
    failed: int = 0


def manual_outcomes_since(uow: UnitOfWork, after: int | None) -> ManualOutcomes:
    """What people recorded since audit row `after` (None: nothing, only where we are now):
    the daemon counts those in `executions_total` too, though another process wrote them."""
    last = int(uow.session.scalar(select(func.max(AuditEntry.id))) or 0)
    if after is None:
        return ManualOutcomes(last)
    rows = uow.session.scalars(select(AuditEntry.data).where(
        AuditEntry.id > after, AuditEntry.id <= last, AuditEntry.event == "state_changed",
        AuditEntry.actor != SYSTEM))
    done = failed = 0
    for data in rows:
        if (data or {}).get("to") == RequestState.EXECUTED.value and "done_by" in data:
            done += 1
        elif (data or {}).get("to") == RequestState.EXECUTION_FAILED.value and \
                "failed_by" in data:
            failed += 1
    return ManualOutcomes(last, done, failed)


def open_near_deadline(uow: UnitOfWork, horizon: datetime) -> list[tuple[str, datetime]]:
    """(request id, deadline) of open requests due by `horizon` and not flagged as breached."""
    query = (
        select(Request.id, Request.deadline_at)
        .where(
            Request.deadline_at.is_not(None),
            Request.deadline_at <= horizon,
            Request.sla_breached_at.is_(None),
            Request.state.not_in([s.value for s in FINAL_STATES]),
        )
        .order_by(Request.deadline_at, Request.id)
    )
    return [(rid, deadline) for rid, deadline in uow.session.execute(query) if deadline]


def later_request_for_account(
    uow: UnitOfWork, account: str, since: datetime, *, other_than: str | None
) -> Request | None:
    """The first request for `account` created since `since` that got past incomplete (and is
    not `other_than`): the request that handled what an old message asked (reprocess)."""
    query = select(Request).where(
        func.lower(Request.account_email) == account.strip().lower(),
        Request.created_at >= since,
        Request.state != RequestState.INCOMPLETE.value,
    )
    if other_than is not None:
        query = query.where(Request.id != other_than)
    return uow.session.scalars(query.order_by(Request.created_at).limit(1)).first()


def stats(uow: UnitOfWork, since: datetime | None) -> dict[str, Any]:
    """`stats --json`: counts by outcome, reason, state and municipality; time to reset."""
    session = uow.session
    mq = select(Message.outcome, Message.reasons, Message.error)
    rq = select(Request.municipality, Request.state, Request.created_at, Request.executed_at)
    if since is not None:
        mq = mq.where(Message.received_at >= since)
        rq = rq.where(Request.created_at >= since)
    by_outcome: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    errors = 0
    total = 0
    for outcome, reasons, error in session.execute(mq):
        total += 1
        by_outcome[outcome or "error"] += 1
        errors += error is not None and outcome is None
        by_reason.update(str(r) for r in reasons or [])
    by_state: Counter[str] = Counter()
    by_municipality: dict[str, dict[str, int]] = {}
    durations: list[float] = []
    requests = 0
    for municipality, state, created_at, executed_at in session.execute(rq):
        requests += 1
        by_state[state] += 1
        counts = by_municipality.setdefault(municipality or "(unknown)",
                                            {"requests": 0, "executed": 0})
        counts["requests"] += 1
        if executed_at is not None:
            counts["executed"] += 1
            durations.append((executed_at - created_at).total_seconds())
    return {
        "since": since.isoformat() if since is not None else None,
        "messages": {
            "total": total,
            "errors": errors,
            "by_outcome": dict(sorted(by_outcome.items())),
            "by_reason": dict(sorted(by_reason.items())),
        },
        "requests": {
            "total": requests,
            "executed": len(durations),
            "by_state": dict(sorted(by_state.items())),
            "by_municipality": dict(sorted(by_municipality.items())),
            "median_seconds_to_reset": statistics.median(durations) if durations else None,
        },
    }


def list_requests(
    uow: UnitOfWork,
    *,
    state: str | Iterable[str] | None = None,
    municipality: str | None = None,
    since: datetime | None = None,
    overdue_at: datetime | None = None,
    limit: int | None = None,
) -> list[Request]:
    """Requests newest first (`requests list`). `overdue_at`: open requests whose deadline is
    before it."""
    query = select(Request)
    if state is not None:
        states = [state] if isinstance(state, str) else list(state)
        query = query.where(Request.state.in_(states))
    if municipality is not None:
        # as people type it: "utrecht" finds "Utrecht"
        query = query.where(func.lower(Request.municipality) == municipality.strip().lower())
    if since is not None:
        query = query.where(Request.created_at >= since)
    if overdue_at is not None:
        query = query.where(
            Request.deadline_at.is_not(None),
            Request.deadline_at < overdue_at,
            Request.state.not_in([s.value for s in FINAL_STATES]),
        )
    query = query.order_by(Request.created_at.desc(), Request.id)
    if limit is not None:
        query = query.limit(limit)
    return list(uow.session.scalars(query))


def request_story(uow: UnitOfWork, request_id: str) -> Request | None:
    """A request with its messages, audit, replies, executions and thread ids loaded
    (`requests show`), in a few queries instead of lazy loads."""
    query = (
        select(Request)
        .where(Request.id == request_id)
        .options(
            selectinload(Request.messages),
            selectinload(Request.audit),
            selectinload(Request.outbox),
            selectinload(Request.executions),
            selectinload(Request.thread_ids),
        )
    )
    return uow.session.scalars(query).one_or_none()


def list_messages(
    uow: UnitOfWork,
    *,
    outcome: str | None = None,
    errors_only: bool = False,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Message]:
    """Decided messages newest first (`messages list`)."""
    query = select(Message)
    if outcome is not None:
        query = query.where(Message.outcome == outcome)
    if errors_only:
        query = query.where(Message.error.is_not(None))
    if since is not None:
        query = query.where(Message.received_at >= since)
    query = query.order_by(Message.received_at.desc(), Message.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(uow.session.scalars(query))


def request_times(uow: UnitOfWork, since: datetime) -> list[tuple[datetime, datetime | None]]:
    """(created, executed) of the requests created since `since`: the console's weekly chart."""
    query = select(Request.created_at, Request.executed_at).where(Request.created_at >= since)
    return [(created, executed) for created, executed in uow.session.execute(query)]


def filed_messages(
    uow: UnitOfWork, *, view: str, quarantine_folder: str, limit: int | None = None,
) -> list[Message]:
    """Messages that did not become (part of) a request, newest first (the console's
    "Quarantine and ignored" page). `view`: `quarantine` (moved to the quarantine folder, or
    failed to process), `ignored`, `rejected`, `deferred` or `all`."""
    query = select(Message)
    if view == "quarantine":
        query = query.where((Message.folder_moved_to == quarantine_folder)
                            | Message.error.is_not(None))
    elif view != "all":
        query = query.where(Message.outcome == view)
    query = query.order_by(Message.received_at.desc(), Message.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(uow.session.scalars(query))
