"""Driving side effects to a final state: replies over SMTP, resets through the executor.

Both work from rows committed earlier (outbox rows, execution intents), claimed with a lease by
the store so two workers never take the same row and a crashed worker's row comes back. Errors
never escape: a temporary failure schedules a retry with capped backoff, a permanent one is
recorded, audited and logged.

`drain` keeps claiming while work is due (issue #14): a weekend backlog is acted on as fast as
the executor and the SMTP server answer, not a fixed handful per tick. What bounds it is
explicit: `concurrency` calls to the executor at once, `[executor] max_calls_per_second`
(a token bucket, `domain/rate_limit.py`) and one SMTP connection for the outbox.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from reset_mailbot.adapters.db.executions import ExecutionClaim
from reset_mailbot.adapters.db.outbox import OutboxClaim
from reset_mailbot.adapters.db.schema import Request, utcnow
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork
from reset_mailbot.adapters.executors.base import ExecutionResult, ExecutionStatus, Executor
from reset_mailbot.adapters.smtp import SmtpError, SmtpPermanentError, SmtpSender
from reset_mailbot.domain.rate_limit import TokenBucket
from reset_mailbot.domain.replies import ReplyKind
from reset_mailbot.domain.reply_templates import ReplyTemplates
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.logs import get_logger
from reset_mailbot.service.failpoints import failpoint
from reset_mailbot.service.replies import queue_reply, reply_data_for_request

log = get_logger("reset_mailbot.delivery")

MANUAL_FAILED_CODE = "manual_failed"  # `requests failed`: result_detail is a person's reason


@dataclass
class OutboxWorker:
    store: Store
    sender: SmtpSender
    support_address: str
    clock: Callable[[], datetime] = utcnow
    on_result: Callable[[str, str], None] | None = None  # (kind, sent|retry|failed): metrics

    def drain(self, stop: threading.Event | None = None, batch: int = 50) -> int:
        """Send batches while replies are due (a failed one is rescheduled, so this ends)."""
        total = 0
        while stop is None or not stop.is_set():
            sent = self.run_due(limit=batch)
            total += sent
            if sent < batch:
                break
        return total

    def run_due(self, limit: int = 20) -> int:
        """Send up to `limit` due replies once; returns how many were attempted."""
        claims = self.store.claim_due_outbox(limit=limit, now=self.clock())
        if not claims:
            return 0
        # one SMTP connection for the batch; if it cannot be opened, every send below fails
        # on its own and its row is rescheduled, so nothing is left claimed
        with contextlib.suppress(SmtpError):
            self.sender.open()
        try:
            self._send_all(claims)
        finally:
            self.sender.close()
        return len(claims)

    def _send_all(self, claims: list[OutboxClaim]) -> None:
        for claim in claims:
            failpoint("after_claim_reply")
            try:
                self.sender.send(claim.rfc822, [claim.to_address], self.support_address)
            except SmtpError as exc:
                permanent = isinstance(exc, SmtpPermanentError)
                with self.store.unit_of_work() as uow:
                    item = uow.outbox.mark_failed(
                        claim.id, error=str(exc)[:1000], permanent=permanent, now=self.clock()
                    )
                    state, next_at = item.state, item.next_attempt_at
                log.warning(
                    "reply_failed" if state == "failed" else "reply_retry",
                    outbox_id=claim.id, request_id=claim.request_id, kind=claim.kind,
                    to=claim.to_address, attempts=claim.attempts, error=str(exc)[:300],
                    permanent=permanent, next_attempt_at=next_at.isoformat() if next_at else None,
                )
                if self.on_result is not None:
                    self.on_result(claim.kind, "failed" if state == "failed" else "retry")
                continue
            failpoint("after_smtp_send")
            with self.store.unit_of_work() as uow:
                uow.outbox.mark_sent(claim.id, now=self.clock())
            log.info(
                "reply_sent", outbox_id=claim.id, request_id=claim.request_id, kind=claim.kind,
                to=claim.to_address, reply_message_id=claim.reply_message_id,
                attempts=claim.attempts, resent=claim.reclaimed,
            )
            if self.on_result is not None:
                self.on_result(claim.kind, "sent")


def queue_outcome_reply(
    store_uow: UnitOfWork, request: Request, support_address: str, now: datetime,
    templates: ReplyTemplates,
) -> None:
    """After a request reached a final state, tell the municipality (nothing otherwise).

    `templates`: the configured rule set's reply templates.
    """
    if request.state == RequestState.EXECUTED:
        data = reply_data_for_request(request, executed_at=request.executed_at or now,
                                      approved_by=request.approved_by)
        queue_reply(store_uow, ReplyKind.CONFIRMATION, data, support_address=support_address,
                    now=now, request=request, templates=templates)
    elif request.state == RequestState.EXECUTION_FAILED:
        # a person's reason (`requests failed`) is shown; an executor's detail is not
        reason = request.result_detail if request.result_code == MANUAL_FAILED_CODE else None
        data = reply_data_for_request(request, failure_code=request.result_code,
                                      failure_reason=reason)
        queue_reply(store_uow, ReplyKind.FAILED, data, support_address=support_address,
                    now=now, request=request, templates=templates)
    elif request.state == RequestState.DENIED:
        data = reply_data_for_request(request, denial_reason=request.result_detail,
                                      denied_by=request.denied_by)
        queue_reply(store_uow, ReplyKind.DENIED, data, support_address=support_address,
                    now=now, request=request, templates=templates)


@dataclass
class ExecutionWorker:
    store: Store
    executor: Executor
    support_address: str
    templates: ReplyTemplates
    max_attempts: int = 10
    clock: Callable[[], datetime] = utcnow
    on_result: Callable[[str, str], None] | None = None  # (status, code): metrics
    on_batch: Callable[[], None] | None = None  # after each recorded batch: replies queued
    concurrency: int = 4  # executor calls at once
    max_calls_per_second: float = 20.0  # [executor] max_calls_per_second
    _bucket: TokenBucket = field(init=False, repr=False)
    _bucket_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.max_calls_per_second,
                                   burst=max(1.0, min(self.max_calls_per_second,
                                                      float(self.concurrency))))

    def drain(self, stop: threading.Event | None = None) -> int:
        """Run batches while executions are due (a retry is due later, so this ends).

        A batch is what the rate allows in about ten seconds (at most five rounds of
        `concurrency`): a claimed execution never waits for its turn anywhere near its lease.
        """
        batch = max(1, min(self.concurrency * 5, int(self.max_calls_per_second * 10)))
        total = 0
        while stop is None or not stop.is_set():
            ran = self.run_due(limit=batch)
            total += ran
            if ran and self.on_batch is not None:
                self.on_batch()
            if ran < batch:
                break
        return total

    def _call(self, claim: ExecutionClaim) -> ExecutionResult:
        """One executor call, after waiting for its turn under the rate limit."""
        with self._bucket_lock:
            wait = self._bucket.reserve(time.monotonic())
        if wait > 0:
            time.sleep(wait)
        failpoint("after_claim_execution")
        try:
            return self.executor.execute(claim.job())
        except Exception as exc:  # an executor bug must not stop the others
            return ExecutionResult(
                status=ExecutionStatus.RETRY, code="executor_error",
                detail=f"{type(exc).__name__}: {exc}"[:500],
            )

    def run_due(self, limit: int = 5, *, request_id: str | None = None) -> int:
        """Run every due execution once (or only `request_id`'s); returns how many ran.

        The calls go out `concurrency` at a time; their results are recorded here, one
        transaction each, in this thread (the database sees one writer per worker).
        """
        claims = self.store.claim_due_executions(
            limit=limit, now=self.clock(), request_id=request_id
        )
        if len(claims) <= 1 or self.concurrency <= 1:
            for claim in claims:
                self._record(claim, self._call(claim))
            return len(claims)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(claims)),
                                thread_name_prefix="executor") as pool:
            futures = [(claim, pool.submit(self._call, claim)) for claim in claims]
            for claim, future in futures:
                self._record(claim, future.result())
        return len(claims)

    def _record(self, claim: ExecutionClaim, result: ExecutionResult) -> None:
        """Store the executor's answer, queue the outcome reply, log and count it."""
        if result.status is ExecutionStatus.RETRY and claim.attempts >= self.max_attempts:
            result = ExecutionResult(
                status=ExecutionStatus.FAILED, code="too_many_attempts",
                detail=f"gave up after {claim.attempts} attempts; last: {result.code}",
            )
        failpoint("after_execute")
        now = self.clock()
        with self.store.unit_of_work() as uow:
            execution = uow.executions.record_result(claim.id, result, now=now)
            request = execution.request
            queue_outcome_reply(uow, request, self.support_address, now, self.templates)
            state = request.state
        event = {
            ExecutionStatus.SUCCEEDED: "reset_executed",
            ExecutionStatus.FAILED: "execution_failed",
            ExecutionStatus.RETRY: "execution_retry",
            ExecutionStatus.PENDING_HUMAN: "execution_pending_human",
        }[result.status]
        logger = log.info if result.status is ExecutionStatus.SUCCEEDED else log.warning
        logger(
            event, request_id=claim.request_id, execution_id=claim.id,
            idempotency_key=claim.idempotency_key, attempts=claim.attempts,
            code=result.code, detail=result.detail[:300], request_state=state,
            account_email=claim.account_email,
        )
        if self.on_result is not None:
            self.on_result(result.status.value, result.code)
