"""What a recorded decision leads to, inside the decision's transaction (the request's life).

A complete or incomplete decision creates the sender's request or is merged into the one its
thread names (`uow.requests.merge` applies `domain/lifecycle.merge_reply`); a request that is
complete is routed by `domain/lifecycle.route_complete` to the approval gate, a person or the
executor. Rejections that get an answer queue it. The inbox and `messages reprocess` both act
through `RequestActor.act_on`, so a corrected decision takes the same path as a new one.
"""

from __future__ import annotations

from datetime import datetime

from reset_mailbot.adapters.db.schema import Message, Request
from reset_mailbot.adapters.db.unit_of_work import UnitOfWork
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.domain.language import message_language
from reset_mailbot.domain.lifecycle import Next, route_complete
from reset_mailbot.domain.message import ParsedMessage
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Outcome, ReasonCode
from reset_mailbot.domain.replies import ReplyData, ReplyKind
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.domain.working_days import deadline
from reset_mailbot.logs import get_logger
from reset_mailbot.service.inbox_policy import InboxPolicy
from reset_mailbot.service.limits import hold_reason
from reset_mailbot.service.replies import queue_reply, reply_data_for_request

log = get_logger("reset_mailbot.inbox")


def _reply_kind_for_rejection(decision: Decision) -> ReplyKind | None:
    if not decision.reply:
        return None
    if ReasonCode.GROUP_MAILBOX in decision.reasons:
        return ReplyKind.REJECTED_GROUP
    if ReasonCode.SENDER_NOT_REGISTERED in decision.reasons:
        return ReplyKind.SENDER_NOT_REGISTERED
    return None


class RequestActor:
    """Applies a decision to the requests and the outbox (one unit of work, the caller's)."""

    def __init__(self, context: DecisionContext, policy: InboxPolicy) -> None:
        self.rules = context.rules
        self.policy = policy
        # staff accounts: municipal domains and our own (the support address's) are always in
        self.limits = policy.limits.with_domains(
            [d for m in context.rules.municipalities.municipalities for d in m.domains]
            + [policy.support_address.rpartition("@")[2]]
        )

    def act_on(
        self, uow: UnitOfWork, decision: Decision, message: Message, now: datetime,
        parsed: ParsedMessage,
    ) -> Request | None:
        """Everything a recorded decision leads to, inside the decision's transaction: the
        request (created or merged, then routed by domain/lifecycle.py) and the reply. Public:
        `reprocess` applies a corrected decision through the very same path."""
        if decision.outcome in (Outcome.COMPLETE, Outcome.INCOMPLETE):
            return self._act_on_request(uow, decision, message, now, parsed)
        kind = _reply_kind_for_rejection(decision)
        if kind is not None:
            queue_reply(
                uow, kind, ReplyData.from_decision(decision),
                support_address=self.policy.support_address, now=now, message=message,
                max_per_hour=self.policy.max_replies_per_sender_per_hour,
                language=message_language(parsed, self.rules.extraction),
                templates=self.rules.templates,
            )
        return None

    def _act_on_request(
        self, uow: UnitOfWork, decision: Decision, message: Message, now: datetime,
        parsed: ParsedMessage,
    ) -> Request:
        sender = decision.sender.address or ""
        thread = [decision.in_reply_to, *decision.references]
        request = uow.requests.for_thread(sender, thread,
                                          request_ids=decision.subject_request_ids)
        if request is not None:
            uow.requests.merge(request, decision, message, now=now)
        else:
            # replies follow the language of the request that started it (Dutch on doubt)
            language = message_language(parsed, self.rules.extraction)
            request = uow.requests.create(decision, message, now=now, language=language,
                                          deadline_at=self._deadline(now)
                                          if not decision.request.missing else None)
        if request.state == RequestState.INCOMPLETE:
            queue_reply(
                uow, ReplyKind.INCOMPLETE, reply_data_for_request(request, decision),
                support_address=self.policy.support_address, now=now, request=request,
                message=message, max_per_hour=self.policy.max_replies_per_sender_per_hour,
                templates=self.rules.templates,
            )
            return request
        # complete: the two-working-day clock starts, then the gate or the executor
        if request.deadline_at is None:
            request.deadline_at = self._deadline(request.completed_at or now)
        route = route_complete(
            hold=hold_reason(uow, request, self.limits, now),
            require_approval=self.policy.require_approval,
            executor_kind=self.policy.executor_kind,
        )
        hold = route.hold
        if hold is not None:
            request.result_code, request.result_detail = hold.reason, hold.detail
            uow.requests.transition(request, RequestState.AWAITING_APPROVAL, now=now,
                                    data={"reason": hold.reason, "detail": hold.detail,
                                          **hold.data})
            log.warning(hold.reason, request_id=request.id, detail=hold.detail,
                        municipality=request.municipality, account_email=request.account_email,
                        **hold.data)
        elif route.next is Next.AWAIT_APPROVAL:
            uow.requests.transition(request, RequestState.AWAITING_APPROVAL, now=now)
        elif route.next is Next.AWAIT_MANUAL_RESET:
            uow.requests.transition(request, RequestState.AWAITING_MANUAL_RESET, now=now)
        else:
            uow.executions.create(request, now=now)
        return request

    def _deadline(self, completed_at: datetime) -> datetime:
        return deadline(completed_at, self.policy.sla_working_days, self.policy.sla_timezone)
