"""`service.reprocess` rules on SQLite and PostgreSQL: never a second request, never twice.

The decision itself is replaced by a fixed one (the rules fix under test is "the new rules
now say X"); everything after it is the real repository and inbox code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.schema import Execution, OutboxItem, Request
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.domain.models import Decision, Evidence, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, MissingDetail, Outcome, ReasonCode
from reset_mailbot.rules_loader import load_rules
from reset_mailbot.service import reprocess
from reset_mailbot.service.inbox import InboxProcessor
from reset_mailbot.service.inbox_policy import InboxPolicy
from tests.examples import EXAMPLES

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SENDER = "j.devries@utrecht.nl"
ACCOUNT = "piet.jansen@hotmail.com"
KEY = "<first@utrecht.nl>"
RAW = f"Message-ID: {KEY}\r\nFrom: {SENDER}\r\nSubject: 2FA\r\n\r\nbody\r\n".encode()



@pytest.fixture
def processor(store: Store) -> InboxProcessor:
    context = DecisionContext(
        rules=load_rules(None, EXAMPLES / "municipalities.yaml"),
        key_lookup=lambda *_a: None,  # type: ignore[arg-type,return-value]
        support_address="support@forus.test",
    )
    policy = InboxPolicy(support_address="support@forus.test", max_message_bytes=10**6,
                         executor_kind="http")
    return InboxProcessor(store, context, policy, clock=lambda: T0)


def decision(outcome: Outcome, *, identity: bool = True,
             reasons: tuple[ReasonCode, ...] = ()) -> Decision:
    request = ResetRequest(
        account_email=ACCOUNT, identity_verified=identity, reset_instructed=True,
        evidence=[Evidence(item=Item.ACCOUNT_EMAIL, text=ACCOUNT)],
        missing_details={} if identity else {Item.IDENTITY_VERIFIED: MissingDetail.NOT_FOUND},
    )
    return Decision(
        message_id=KEY, message_key=KEY, outcome=outcome, reasons=list(reasons),
        missing=request.missing, reply=outcome is not Outcome.REJECTED,
        sender=SenderInfo(address=SENDER, municipality="Utrecht"), request=request,
        subject="2FA",
    )


def decide_as(monkeypatch: pytest.MonkeyPatch, d: Decision) -> None:
    monkeypatch.setattr(reprocess, "decide_parsed", lambda _parsed, _context, _now=None: d)


def arrive(processor: InboxProcessor, monkeypatch: pytest.MonkeyPatch, d: Decision) -> int:
    """The message as the daemon first decided it."""
    monkeypatch.setattr("reset_mailbot.service.inbox.decide_parsed", lambda _p, _c, _now=None: d)
    _folder, pk = processor.handle_raw(RAW, mailbox="INBOX", uidvalidity=1, uid=1, now=T0)
    assert pk is not None
    return pk


def count(store: Store, model: type) -> int:
    with store.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


def test_incomplete_message_completes_its_own_request_once(
    store: Store, processor: InboxProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = arrive(processor, monkeypatch, decision(Outcome.INCOMPLETE, identity=False))
    with store.unit_of_work() as uow:
        [request] = queries.list_requests(uow)
        first_id = request.id
        assert request.state == "incomplete"
    replies = count(store, OutboxItem)

    decide_as(monkeypatch, decision(Outcome.COMPLETE))
    result = reprocess.reprocess_message(store, processor, pk, actor="tester",
                                         now=T0 + timedelta(hours=1))
    assert (result.outcome, result.acted, result.request_id) == ("complete", True, first_id)
    assert result.request_state == "complete"
    assert count(store, Request) == 1  # the same request, not a second one
    assert count(store, Execution) == 1
    assert count(store, OutboxItem) == replies  # no new reply until the reset is done
    with store.unit_of_work() as uow:
        request = uow.requests.get(first_id)
        assert request is not None and request.deadline_at is not None
        message = uow.messages.get(pk)
        assert message is not None
        assert (message.outcome, message.error, message.attempts) == ("complete", None, 2)
        assert message.received_at == T0  # arrival time is kept
        [audit] = uow.audit_log.entries(event="message_reprocessed")
        assert audit.actor == "tester" and audit.data["previous_outcome"] == "incomplete"

    with pytest.raises(reprocess.ReprocessRefused, match="which is complete"):
        reprocess.reprocess_message(store, processor, pk, actor="tester")
    assert count(store, Execution) == 1


def test_same_result_is_only_recorded(
    store: Store, processor: InboxProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = decision(Outcome.INCOMPLETE, identity=False)
    pk = arrive(processor, monkeypatch, d)
    replies = count(store, OutboxItem)
    decide_as(monkeypatch, d)
    result = reprocess.reprocess_message(store, processor, pk, actor="tester")
    assert (result.outcome, result.acted) == ("incomplete", False)
    assert count(store, OutboxItem) == replies  # no second "incomplete" reply
    assert count(store, Request) == 1


def test_rejected_message_is_not_decided_into_a_second_reset(
    store: Store, processor: InboxProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = arrive(processor, monkeypatch,
                decision(Outcome.REJECTED, reasons=(ReasonCode.SENDER_NOT_REGISTERED,)))
    # meanwhile the municipality sent the request again and it was handled
    with store.unit_of_work() as uow:
        again = decision(Outcome.COMPLETE).model_copy(
            update={"message_id": "<second@utrecht.nl>", "message_key": "<second@utrecht.nl>"})
        message = uow.messages.record(again, raw=b"x", now=T0 + timedelta(minutes=5))
        uow.requests.create(again, message, now=T0 + timedelta(minutes=5))
    decide_as(monkeypatch, decision(Outcome.COMPLETE))
    with pytest.raises(reprocess.ReprocessRefused, match="same account"):
        reprocess.reprocess_message(store, processor, pk, actor="tester")
    assert count(store, Request) == 1
    with store.unit_of_work() as uow:
        message = uow.messages.get(pk)
        assert message is not None and message.outcome == "rejected"  # rolled back


def test_refusals(store: Store, processor: InboxProcessor,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(reprocess.MessageNotFound):
        reprocess.reprocess_message(store, processor, 404, actor="tester")
    pk = arrive(processor, monkeypatch, decision(Outcome.COMPLETE))
    with pytest.raises(reprocess.ReprocessRefused, match="reprocessing could act on it twice"):
        reprocess.reprocess_message(store, processor, pk, actor="tester")


def test_deferred_message_in_the_inbox_belongs_to_the_daemon(
    store: Store, processor: InboxProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = arrive(processor, monkeypatch,
                decision(Outcome.DEFERRED, reasons=(ReasonCode.DNS_TEMPORARY_FAILURE,)))
    decide_as(monkeypatch, decision(Outcome.COMPLETE))
    with pytest.raises(reprocess.ReprocessRefused, match="still in the inbox"):
        reprocess.reprocess_message(store, processor, pk, actor="tester")
    with store.unit_of_work() as uow:  # someone filed it by hand
        uow.messages.mark_moved(pk, "Quarantine", now=T0)
    result = reprocess.reprocess_message(store, processor, pk, actor="tester")
    assert (result.previous_outcome, result.outcome, result.acted) == (
        "deferred", "complete", True)
    assert count(store, Execution) == 1
