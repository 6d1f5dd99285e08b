"""What a person does to a request: approve, deny, record a manual reset, dry-run (issue #5).

The CLI (`cli/actions.py`) only parses arguments and prints; the rules live here so they are
the same for every caller. Each action is one unit of work that locks the request row, checks
its state against the state machine, changes it with the person as the audit actor and queues
the reply in the same transaction; the reply is sent by the outbox job of the running daemon
(or the next `run --once`), exactly like the replies the daemon queues itself.

`approve` then runs the executor at once for that one request, through the same claim and
record path as the daemon's execution job, so a crash or a concurrent daemon cannot make it
reset twice (the claim is a lease, the executor gets the stored idempotency key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from reset_mailbot.adapters.db.bound import SYSTEM
from reset_mailbot.adapters.db.executions import default_idempotency_key, execution_job
from reset_mailbot.adapters.db.schema import Request, utcnow
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork
from reset_mailbot.adapters.executors.base import ExecutionJob, ExecutionResult, Executor
from reset_mailbot.domain.lifecycle import Next, route_approved
from reset_mailbot.domain.reply_templates import ReplyTemplates
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.logs import get_logger
from reset_mailbot.service.delivery import (
    MANUAL_FAILED_CODE,
    ExecutionWorker,
    queue_outcome_reply,
)

log = get_logger("reset_mailbot.actions")

MANUAL_RESET_CODE = "reset"  # what `requests done` records: the same code as an executor's reset


class ActionRefused(Exception):
    """The action does not fit the request (unknown, wrong state, same person twice)."""


@dataclass(frozen=True)
class ActionOutcome:
    """What an action did, for the CLI to print."""

    request_id: str
    state: str
    summary: str
    result: ExecutionResult | None = None


def _actor(by: str) -> str:
    actor = " ".join(by.split())
    if not actor:
        raise ActionRefused("--by must name the person acting")
    return actor


def _locked(uow: UnitOfWork, request_id: str) -> Request:
    """The request row, locked for this transaction: two people acting at once cannot both
    succeed."""
    request = uow.requests.lock(request_id)
    if request is None:
        raise ActionRefused(f"no request {request_id}")
    return request


def _expect(request: Request, *states: RequestState, action: str) -> None:
    if request.state not in {s.value for s in states}:
        wanted = " or ".join(s.value for s in states)
        raise ActionRefused(
            f"request {request.id} is {request.state}; {action} needs {wanted}"
        )


def is_requester(request: Request, person: str) -> bool:
    """Whether `person` (a name or an address) is the official who sent the request.

    Case-insensitive; a bare name is compared with the local part of the sender's address too
    (`j.devries` is `j.devries@utrecht.nl`), since people sign with whatever they type.
    """
    who = " ".join(person.split()).lower()
    sender = (request.sender or "").strip().lower()
    if not who or not sender:
        return False
    return who == sender or ("@" not in who and who == sender.partition("@")[0])


def acted_before(request: Request, person: str) -> bool:
    """Whether `person` already acted on the request (reprocessed the message that made it
    complete, marked it, ...): four eyes means the approver is neither the requester nor
    anyone whose action brought the request to the approval step."""
    who = " ".join(person.split()).lower()
    return any(entry.actor.lower() == who for entry in request.audit
               if entry.actor != SYSTEM)


def approve(
    store: Store,
    request_id: str,
    *,
    by: str,
    executor: Executor | None,
    support_address: str,
    templates: ReplyTemplates,
    max_attempts: int = 10,
    clock: Callable[[], datetime] = utcnow,
) -> ActionOutcome:
    """Four-eyes approval: `awaiting_approval → complete`, then the executor runs now.

    With no executor (`kind = "manual"`) the request goes on to `awaiting_manual_reset`.
    The approver must not be the requesting official, nor anyone who already acted on the
    request (`acted_before`): four eyes, enforced here for the CLI and the console alike.
    """
    actor = _actor(by)
    now = clock()
    with store.unit_of_work() as uow:
        request = _locked(uow, request_id)
        _expect(request, RequestState.AWAITING_APPROVAL, action="approve")
        if is_requester(request, actor):
            raise ActionRefused(
                f"{actor} sent request {request.id}; a second person must approve it"
            )
        if acted_before(request, actor):
            raise ActionRefused(
                f"{actor} already acted on request {request.id}; a second person must "
                "approve it"
            )
        held_for = request.result_code  # rate_limited / staff_account, or None
        uow.requests.approve(request, by=actor, now=now)
        if route_approved(has_executor=executor is not None) is Next.AWAIT_MANUAL_RESET:
            uow.requests.transition(request, RequestState.AWAITING_MANUAL_RESET, actor=actor,
                                    now=now)
        else:
            uow.executions.create(request, now=now)
        request_pk = request.id
    log.info("request_approved", request_id=request_pk, approved_by=actor, held_for=held_for)
    if executor is None:
        return ActionOutcome(
            request_pk, RequestState.AWAITING_MANUAL_RESET.value,
            f"approved by {actor}; waiting for the manual reset (requests done/failed)",
        )
    worker = ExecutionWorker(store, executor, support_address, templates,
                             max_attempts=max_attempts, clock=clock)
    ran = worker.run_due(limit=1, request_id=request_pk)
    with store.unit_of_work() as uow:
        request = uow.requests.get(request_pk)
        assert request is not None
        state, code, detail = request.state, request.result_code, request.result_detail
    if not ran:  # a running daemon claimed it first: it reports and replies
        return ActionOutcome(request_pk, state, f"approved by {actor}; the daemon runs it")
    result_text = f"{code}: {detail}" if detail else str(code)
    if state == RequestState.COMPLETE:
        summary = f"approved by {actor}; temporary failure ({result_text}), the daemon retries"
    else:
        summary = f"approved by {actor}; {state} ({result_text}); reply queued"
    return ActionOutcome(request_pk, state, summary)


def _reason(reason: str) -> str:
    """The reason a municipality receives: required, since a bare refusal helps nobody."""
    reason = reason.strip()
    if not reason:
        raise ActionRefused("--reason must say why (the municipality receives it)")
    return reason


def deny(
    store: Store,
    request_id: str,
    *,
    by: str,
    reason: str,
    support_address: str,
    templates: ReplyTemplates,
    clock: Callable[[], datetime] = utcnow,
) -> ActionOutcome:
    """Four-eyes denial: `awaiting_approval → denied`; the municipality gets the reason."""
    actor = _actor(by)
    reason = _reason(reason)
    now = clock()
    with store.unit_of_work() as uow:
        request = _locked(uow, request_id)
        _expect(request, RequestState.AWAITING_APPROVAL, action="deny")
        uow.requests.deny(request, by=actor, reason=reason, now=now)
        queue_outcome_reply(uow, request, support_address, now, templates)
        request_pk = request.id
    log.info("request_denied", request_id=request_pk, denied_by=actor, reason=reason)
    return ActionOutcome(request_pk, RequestState.DENIED.value,
                         f"denied by {actor}; denial reply queued")


def mark_done(
    store: Store,
    request_id: str,
    *,
    by: str,
    note: str | None = None,
    support_address: str,
    templates: ReplyTemplates,
    clock: Callable[[], datetime] = utcnow,
) -> ActionOutcome:
    """Manual executor: a person reset 2FA in the back office → `executed`, confirmation."""
    actor = _actor(by)
    now = clock()
    with store.unit_of_work() as uow:
        request = _locked(uow, request_id)
        _expect(request, RequestState.AWAITING_MANUAL_RESET, action="done")
        request.result_code = MANUAL_RESET_CODE
        request.result_detail = f"reset by hand by {actor}" + (f": {note}" if note else "")
        uow.requests.transition(request, RequestState.EXECUTED, actor=actor, now=now,
                       data={"done_by": actor, "note": note})
        queue_outcome_reply(uow, request, support_address, now, templates)
        request_pk = request.id
    log.info("reset_executed", request_id=request_pk, code=MANUAL_RESET_CODE, done_by=actor,
             note=note)
    return ActionOutcome(request_pk, RequestState.EXECUTED.value,
                         f"executed by {actor}; confirmation queued")


def mark_failed(
    store: Store,
    request_id: str,
    *,
    by: str,
    reason: str,
    support_address: str,
    templates: ReplyTemplates,
    clock: Callable[[], datetime] = utcnow,
) -> ActionOutcome:
    """Manual executor: the reset could not be done → `execution_failed`, reason replied."""
    actor = _actor(by)
    reason = _reason(reason)
    now = clock()
    with store.unit_of_work() as uow:
        request = _locked(uow, request_id)
        _expect(request, RequestState.AWAITING_MANUAL_RESET, action="failed")
        request.result_code = MANUAL_FAILED_CODE
        request.result_detail = reason
        uow.requests.transition(request, RequestState.EXECUTION_FAILED, actor=actor, now=now,
                       data={"failed_by": actor, "reason": reason})
        queue_outcome_reply(uow, request, support_address, now, templates)
        request_pk = request.id
    log.warning("execution_failed", request_id=request_pk, code=MANUAL_FAILED_CODE,
                failed_by=actor, detail=reason)
    return ActionOutcome(request_pk, RequestState.EXECUTION_FAILED.value,
                         f"marked failed by {actor}; failure reply queued")


def job_for(uow: UnitOfWork, request: Request) -> ExecutionJob:
    """The job the executor would get for `request` (its stored key if one was queued)."""
    key = (
        request.executions[-1].idempotency_key
        if request.executions
        else default_idempotency_key(request.id)
    )
    return execution_job(request, key)


def dry_run(store: Store, request_id: str, executor: Executor) -> tuple[str, ExecutionResult]:
    """Ask the executor what it would do for the request; nothing changes, here or there.

    Returns the request's state and the executor's answer. Nothing is written to our database
    either (not even an audit row): a dry run is a question, not an event.
    """
    with store.unit_of_work() as uow:
        request = uow.requests.get(request_id.strip())
        if request is None:
            raise ActionRefused(f"no request {request_id}")
        if not request.account_email:
            raise ActionRefused(f"request {request.id} has no account e-mail yet")
        job = job_for(uow, request)
        state = request.state
    return state, executor.dry_run(job)
