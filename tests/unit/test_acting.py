"""What a recorded decision leads to (service/acting.py), against a fake unit of work.

Each test gives `RequestActor.act_on` one decision and reads the intents it produced: the
request and its transitions, the execution, the replies queued. No database: the fake stores
(tests/unit/fake_uow.py) apply the same domain rules the real ones do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reset_mailbot.adapters.db.schema import Message
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.domain.message import ParsedMessage, parse_message
from reset_mailbot.domain.models import Decision, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, Outcome, ReasonCode
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.rules_loader import load_rules
from reset_mailbot.service.acting import RequestActor
from reset_mailbot.service.inbox_policy import InboxPolicy
from reset_mailbot.service.limits import ResetLimits
from tests.examples import EXAMPLES
from tests.unit.fake_uow import FakeUnitOfWork

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SENDER = "j.devries@utrecht.nl"
ACCOUNT = "resident@example.org"
RULES = load_rules(None, EXAMPLES / "municipalities.yaml")
PARSED: ParsedMessage = parse_message(
    b"From: Jan de Vries <j.devries@utrecht.nl>\r\nTo: support@forus.test\r\n"
    b"Subject: 2FA herstel\r\nMessage-ID: <m1@utrecht.nl>\r\n\r\n"
    b"Graag de tweefactorauthenticatie resetten.\r\n"
)


def actor(**policy: Any) -> RequestActor:
    context = DecisionContext(rules=RULES, key_lookup=lambda _name: None,
                              support_address="support@forus.test")
    settings: dict[str, Any] = {"support_address": "support@forus.test",
                                "max_message_bytes": 1 << 20, "executor_kind": "http"}
    return RequestActor(context, InboxPolicy(**(settings | policy)))


def decision(message_id: str = "<m1@utrecht.nl>", *, in_reply_to: str | None = None,
             outcome: Outcome | None = None, reasons: list[ReasonCode] | None = None,
             reply: bool = False, account: str | None = ACCOUNT, identity: bool = True,
             instructed: bool = True) -> Decision:
    items = ResetRequest(account_email=account, identity_verified=identity,
                         reset_instructed=instructed)
    if outcome is None:
        outcome = Outcome.INCOMPLETE if items.missing else Outcome.COMPLETE
    return Decision(message_id=message_id, message_key=message_id, outcome=outcome,
                    reasons=reasons or [], missing=items.missing, reply=reply,
                    sender=SenderInfo(address=SENDER, municipality="Utrecht"), request=items,
                    in_reply_to=in_reply_to, references=[in_reply_to] if in_reply_to else [])


def act(uow: FakeUnitOfWork, a: RequestActor, d: Decision) -> Any:
    message = Message(message_key=d.message_key, message_id=d.message_id)
    return a.act_on(uow, d, message, NOW, PARSED)  # type: ignore[arg-type]


def test_a_complete_request_goes_to_the_executor() -> None:
    uow = FakeUnitOfWork()
    request = act(uow, actor(), decision())
    assert request.state == RequestState.COMPLETE
    assert [e.request_id for e in uow.executions.rows] == [request.id]
    assert request.deadline_at is not None  # the two-working-day clock runs
    assert uow.outbox.rows == []  # the confirmation follows the executor's answer


@pytest.mark.parametrize(("policy", "state"), [
    ({"require_approval": True}, RequestState.AWAITING_APPROVAL),
    ({"executor_kind": "manual"}, RequestState.AWAITING_MANUAL_RESET),
])
def test_the_gate_or_a_person_instead_of_the_executor(policy: dict[str, Any],
                                                        state: RequestState) -> None:
    uow = FakeUnitOfWork()
    request = act(uow, actor(**policy), decision())
    assert request.state == state
    assert uow.executions.rows == []


def test_a_limit_holds_the_request_for_a_person_and_says_why() -> None:
    uow = FakeUnitOfWork()
    uow.requests.executed_counts["Utrecht"] = 3
    request = act(uow, actor(limits=ResetLimits(per_municipality_per_day=3)), decision())
    assert request.state == RequestState.AWAITING_APPROVAL
    assert request.result_code == ReasonCode.RATE_LIMITED.value
    assert uow.executions.rows == []
    [(_, data)] = [e for e in uow.audit_log.events if e[0] == "state_changed"]
    assert data["reason"] == "rate_limited" and data["count"] == 3


def test_a_staff_account_is_never_reset_automatically() -> None:
    uow = FakeUnitOfWork()
    request = act(uow, actor(), decision(account="collega@utrecht.nl"))
    assert request.state == RequestState.AWAITING_APPROVAL
    assert request.result_code == ReasonCode.STAFF_ACCOUNT.value


def test_an_incomplete_request_gets_one_reply_naming_what_is_missing() -> None:
    uow = FakeUnitOfWork()
    request = act(uow, actor(), decision(identity=False))
    assert request.state == RequestState.INCOMPLETE
    assert request.deadline_at is None  # the clock starts when it is complete
    [reply] = uow.outbox.rows
    assert (reply.kind, reply.to_address) == ("incomplete", SENDER)
    assert request.missing == [Item.IDENTITY_VERIFIED.value]


def test_the_answer_in_the_thread_completes_the_request_and_runs_it() -> None:
    uow = FakeUnitOfWork()
    a = actor()
    first = act(uow, a, decision(identity=False))
    our_reply = uow.outbox.rows[0].reply_message_id
    second = act(uow, a, decision("<m2@utrecht.nl>", in_reply_to=our_reply, account=None,
                                  instructed=False))
    assert second is first  # merged, not a second request
    assert first.state == RequestState.COMPLETE
    assert first.account_email == ACCOUNT and first.identity_verified
    assert [e.request_id for e in uow.executions.rows] == [first.id]
    assert "request_merged" in uow.audit_log.names()


def test_an_answer_outside_the_thread_starts_its_own_request() -> None:
    uow = FakeUnitOfWork()
    a = actor()
    first = act(uow, a, decision(identity=False))
    second = act(uow, a, decision("<m2@utrecht.nl>", identity=False))
    assert second.id != first.id
    assert len(uow.requests.rows) == 2


def test_the_hourly_reply_limit_queues_nothing_and_audits_it() -> None:
    uow = FakeUnitOfWork()
    uow.outbox.sent_last_hour[SENDER] = 5
    act(uow, actor(max_replies_per_sender_per_hour=5), decision(identity=False))
    assert uow.outbox.rows == []
    assert "reply_rate_limited" in uow.audit_log.names()


@pytest.mark.parametrize(("reason", "kind"), [
    (ReasonCode.GROUP_MAILBOX, "rejected_group"),
    (ReasonCode.SENDER_NOT_REGISTERED, "sender_not_registered"),
])
def test_an_answered_rejection_queues_its_reply_and_no_request(reason: ReasonCode,
                                                               kind: str) -> None:
    uow = FakeUnitOfWork()
    result = act(uow, actor(), decision(outcome=Outcome.REJECTED, reasons=[reason], reply=True))
    assert result is None
    assert uow.requests.rows == []
    assert [r.kind for r in uow.outbox.rows] == [kind]


def test_an_unanswered_rejection_leads_to_nothing() -> None:
    uow = FakeUnitOfWork()
    d = decision(outcome=Outcome.REJECTED, reasons=[ReasonCode.DKIM_INVALID])
    assert act(uow, actor(), d) is None
    assert (uow.requests.rows, uow.outbox.rows, uow.audit_log.events) == ([], [], [])
