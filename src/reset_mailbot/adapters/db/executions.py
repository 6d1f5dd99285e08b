"""Executions: the intent to reset, recorded before anything is called, and its result.

One execution per idempotency key (derived from the request id), so a replayed or reclaimed
execution is the same reset at the executor. Which state an executor's answer leads to is
`domain/lifecycle.after_execution`; this store applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from reset_mailbot.adapters.db.audit_log import AuditedStore, AuditLog
from reset_mailbot.adapters.db.bound import iso
from reset_mailbot.adapters.db.instances import owner_gone
from reset_mailbot.adapters.db.requests import RequestStore, sender_name_of
from reset_mailbot.adapters.db.schema import Execution, Request
from reset_mailbot.adapters.executors.base import ExecutionJob, ExecutionResult
from reset_mailbot.domain.backoff import Backoff
from reset_mailbot.domain.lifecycle import after_execution
from reset_mailbot.domain.request_state import RequestState


class ExecutionState:
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    PENDING_HUMAN = "pending_human"  # handed to a person (manual executor)


@dataclass(frozen=True)
class ExecutionClaim:
    """An execution claimed for running, with the job the executor is given."""

    id: int
    attempts: int
    reclaimed: bool
    work: ExecutionJob

    def job(self) -> ExecutionJob:
        return self.work

    @property
    def request_id(self) -> str:
        return self.work.request_id

    @property
    def idempotency_key(self) -> str:
        return self.work.idempotency_key

    @property
    def account_email(self) -> str:
        return self.work.account_email

    @property
    def source_message_id(self) -> str | None:
        return self.work.message_id

    @property
    def approved_by(self) -> str | None:
        return self.work.approved_by


def execution_job(request: Request, idempotency_key: str) -> ExecutionJob:
    """What an executor is given for `request`: for a claimed execution and a dry run alike.

    The requester's name and the source message are the latest message's (all of a request's
    messages come from its one sender).
    """
    latest = request.messages[-1] if request.messages else None
    return ExecutionJob(
        request_id=request.id,
        idempotency_key=idempotency_key,
        account_email=request.account_email or "",
        municipality=request.municipality or "",
        requested_by=request.sender,
        case_reference=request.case_reference,
        message_id=latest.message_id if latest else None,
        approved_by=request.approved_by,
        received_at=latest.received_at if latest else None,
        requested_by_name=sender_name_of(latest),
    )


def default_idempotency_key(request_id: str) -> str:
    """One reset per request: the key is derived from the request id alone."""
    return f"reset-mailbot:{request_id}"


class ExecutionStore(AuditedStore):
    def __init__(
        self, session: Session, clock: Callable[[], datetime], audit: AuditLog, *,
        requests: RequestStore, backoff: Backoff,
    ) -> None:
        super().__init__(session, clock, audit)
        self._requests = requests
        self._backoff = backoff

    def create(
        self,
        request: Request,
        *,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> Execution:
        """Record the intent to reset before anything is called; one per key (idempotent)."""
        now = self._now(now)
        key = idempotency_key or default_idempotency_key(request.id)
        existing = self.session.scalars(
            select(Execution).where(Execution.idempotency_key == key)
        ).one_or_none()
        if existing is not None:
            return existing
        execution = Execution(
            request=request,
            idempotency_key=key,
            state=ExecutionState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        self.session.add(execution)
        self.session.flush()
        self._audit.append(
            "execution_queued",
            request=request,
            now=now,
            data={"execution_id": execution.id, "idempotency_key": key},
        )
        return execution

    def get(self, execution_id: int) -> Execution:
        """The execution with its request and what the request's outcome reply needs (latest
        message, thread ids), in three queries up front instead of lazy loads that would each
        flush the changes made so far."""
        execution = self.session.get(Execution, execution_id, options=[
            joinedload(Execution.request).selectinload(Request.messages),
            joinedload(Execution.request).selectinload(Request.thread_ids),
        ])
        if execution is None:
            raise LookupError(f"no execution {execution_id}")
        return execution

    def record_result(
        self, execution_id: int, result: ExecutionResult, *, now: datetime | None = None
    ) -> Execution:
        """Store what the executor said and move the request on.

        succeeded → request `executed`; failed → `execution_failed`; retry → request back to
        `complete` and the execution due again after capped backoff; pending_human →
        `awaiting_manual_reset`. A result for an execution that is no longer `running` (a
        reclaim overtook a slow worker) is only audited, never applied twice.
        """
        now = self._now(now)
        execution = self.get(execution_id)
        request = execution.request
        data = {"execution_id": execution.id, "code": result.code, "detail": result.detail,
                "attempts": execution.attempts}
        if execution.state != ExecutionState.RUNNING:
            self._audit.append("execution_result_late", request=request, now=now,
                       data={**data, "state": execution.state, "status": result.status.value})
            return execution
        execution.result_code = result.code
        execution.detail = result.detail
        execution.claimed_at = None
        request.result_code = result.code
        request.result_detail = result.detail
        step = after_execution(result.status)  # domain/lifecycle.py decides, we apply
        execution.state = step.execution_state
        if step.retry:
            execution.next_attempt_at = now + self._backoff.delay(
                execution.attempts
            )
            self._audit.append(step.event, request=request, now=now,
                       data={**data, "next_attempt_at": iso(execution.next_attempt_at)})
            self._requests.transition(request, step.request_state, now=now,
                            data={"retry_at": iso(execution.next_attempt_at)})
            return execution
        execution.next_attempt_at = None
        execution.finished_at = now
        self._audit.append(step.event, request=request, now=now, data=data)
        self._requests.transition(request, step.request_state, now=now)
        return execution

    # ------------------------------------------------------------------ mailbox

    def claim_due(
        self, *, lease: timedelta, limit: int, now: datetime, request_id: str | None = None,
        owner: str | None = None, claim_timeout: timedelta | None = None,
    ) -> list[ExecutionClaim]:
        """Claim due executions (pending, retry, expired `running` leases); request → executing.

        Only executions of requests in `complete` (or still `executing` after a crash) are due:
        a request waiting for approval or denied never runs, whatever its execution row says.
        `request_id`: only that request's (`requests approve` runs the one it approved).
        `owner`: the claiming daemon's instance id, recorded on the row; a `running` row whose
        owner has not beaten for `claim_timeout` is due again (instances.py), and any `running`
        row after `lease` (claims without an owner: `run --once`, the CLI).
        """
        due = or_(
            and_(Execution.state.in_([ExecutionState.PENDING, ExecutionState.RETRY]),
                 Execution.next_attempt_at <= now),
            and_(Execution.state == ExecutionState.RUNNING,
                 or_(Execution.claimed_at <= now - lease,
                     owner_gone(Execution.claimed_by, now, claim_timeout or lease))),
        )
        query = (
            select(Execution)
            .join(Request, Request.id == Execution.request_id)
            .where(due, Request.state.in_([RequestState.COMPLETE.value,
                                           RequestState.EXECUTING.value]))
            # the request from the join above and its messages in one more query, instead
            # of two lazy loads per claimed execution
            .options(contains_eager(Execution.request).selectinload(Request.messages))
            .order_by(Execution.next_attempt_at, Execution.id)
            .limit(limit)
        )
        if request_id is not None:
            query = query.where(Request.id == request_id)
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=(Execution, Request))
        claims: list[ExecutionClaim] = []
        for execution in self.session.scalars(query).all():
            request = execution.request
            reclaimed = execution.state == ExecutionState.RUNNING
            execution.state = ExecutionState.RUNNING
            execution.claimed_at = now
            execution.claimed_by = owner
            execution.attempts += 1
            if request.state != RequestState.EXECUTING:
                self._requests.transition(request, RequestState.EXECUTING, now=now)
            self._audit.append("execution_reclaimed" if reclaimed else "execution_started",
                               request=request, now=now,
                               data={"execution_id": execution.id,
                                     "attempts": execution.attempts,
                                     "idempotency_key": execution.idempotency_key,
                                     "instance": owner})
            claims.append(ExecutionClaim(
                id=execution.id, attempts=execution.attempts, reclaimed=reclaimed,
                work=execution_job(request, execution.idempotency_key),
            ))
        return claims
