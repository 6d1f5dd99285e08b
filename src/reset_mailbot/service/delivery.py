"""Driving side effects to a final state: replies over SMTP, resets through the executor.

Both work from rows committed earlier (outbox rows, execution intents), claimed with a lease by
the store so two workers never take the same row and a crashed worker's row comes back. Errors
never escape: a temporary failure schedules a retry with capped backoff, a permanent one is
recorded, audited and logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from reset_mailbot.adapters.db.outbox import OutboxClaim
from reset_mailbot.adapters.db.schema import Request, utcnow
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork
from reset_mailbot.adapters.executors.base import ExecutionResult, ExecutionStatus, Executor
from reset_mailbot.adapters.smtp import SmtpError, SmtpPermanentError, SmtpSender
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

    def run_due(self, limit: int = 20) -> int:
        """Send every due reply once; returns how many were attempted."""
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

    def run_due(self, limit: int = 5, *, request_id: str | None = None) -> int:
        """Run every due execution once (or only `request_id`'s); returns how many ran."""
        claims = self.store.claim_due_executions(
            limit=limit, now=self.clock(), request_id=request_id
        )
        for claim in claims:
            failpoint("after_claim_execution")
            try:
                result = self.executor.execute(claim.job())
            except Exception as exc:  # an executor bug must not stop the others
                result = ExecutionResult(
                    status=ExecutionStatus.RETRY, code="executor_error",
                    detail=f"{type(exc).__name__}: {exc}"[:500],
                )
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
        return len(claims)
