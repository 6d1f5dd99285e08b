"""`replies resend` in the service layer, on real databases (issue #17): a reply whose delivery
failed for good is queued again and sent byte-identical, with the same Message-ID, audited with
the person who resent it; anything else is refused.

Requests are made by the inbox processor's own `act_on`, as in test_actions.py; the SMTP
server is a stand-in that refuses (5yz) until it is told to accept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.schema import OutboxItem
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.smtp import SmtpPermanentError
from reset_mailbot.domain.message import parse_message
from reset_mailbot.domain.models import Decision, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, Outcome
from reset_mailbot.service.actions import ActionRefused
from reset_mailbot.service.delivery import OutboxWorker
from reset_mailbot.service.inbox import InboxProcessor
from reset_mailbot.service.reply_actions import resend_reply
from reset_mailbot_testing.dkim_signing import plain_message
from tests.integration.test_actions import SENDER, SUPPORT, processor

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class Smtp:
    """Refuses every message for good until `accept` is set; keeps what it accepted."""

    def __init__(self) -> None:
        self.accept = False
        self.sent: list[bytes] = []

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, rfc822: bytes, recipients: list[str], sender: str) -> None:
        if not self.accept:
            raise SmtpPermanentError("550 5.1.1 mailbox unavailable", 550)
        self.sent.append(rfc822)


def submit(proc: InboxProcessor, key: str, sender: str = SENDER) -> str:
    """An incomplete request (no account address): one incomplete reply queued."""
    decision = Decision(
        message_id=f"<{key}@utrecht.nl>", message_key=key, outcome=Outcome.INCOMPLETE,
        reasons=[], missing=[Item.ACCOUNT_EMAIL], reply=True,
        sender=SenderInfo(address=sender, municipality="Utrecht"),
        request=ResetRequest(identity_verified=True, reset_instructed=True),
        subject="2FA reset",
    )
    raw = plain_message(from_=f"Official <{sender}>", msgid=f"<{key}@utrecht.nl>",
                        body="Graag de 2FA resetten.\r\n")
    with proc.store.unit_of_work() as uow:
        message = uow.messages.record(decision, raw=raw, sha256="cd" * 32, mailbox="INBOX",
                                      uidvalidity=7, uid=sum(key.encode()), now=T0)
        request = proc.act_on(uow, decision, message, T0, parse_message(raw))
        assert request is not None and request.state == "incomplete"
        return request.id


def _reply(store: Store, request_id: str) -> tuple[int, str, bytes, str]:
    with store.unit_of_work() as uow:
        request = queries.request_story(uow, request_id)
        assert request is not None
        [item] = request.outbox
        return item.id, item.state, item.rfc822, item.reply_message_id


def _failed_reply(store: Store, smtp: Smtp, clock: list[datetime]) -> tuple[str, int]:
    """An incomplete request whose reply the server refused for good."""
    request_id = submit(processor(store), "r1")
    worker = OutboxWorker(store, smtp, SUPPORT, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert worker.run_due() == 1
    reply_id, state, _, _ = _reply(store, request_id)
    assert state == "failed"
    return request_id, reply_id


def test_a_failed_reply_is_sent_again_byte_identical_and_audited(store: Store) -> None:
    smtp, clock = Smtp(), [T0]
    request_id, reply_id = _failed_reply(store, smtp, clock)
    _, _, stored, message_id = _reply(store, request_id)
    later = T0 + timedelta(hours=2)

    outcome = resend_reply(store, reply_id, by="  Petra   de Boer ", clock=lambda: later)
    assert (outcome.request_id, outcome.state) == (request_id, "queued")
    assert "Petra de Boer" in outcome.summary
    with store.unit_of_work() as uow:
        item = uow.outbox.get(reply_id)
        assert (item.state, item.attempts, item.next_attempt_at, item.last_error) == (
            "queued", 0, later, None)
        [audit] = uow.audit_log.entries(request_id=request_id, event="reply_resent")
        assert (audit.actor, audit.at, audit.request_id) == ("Petra de Boer", later, request_id)
        assert audit.data["outbox_id"] == reply_id
        assert audit.data["previous_attempts"] == 1
        assert "550" in audit.data["previous_error"]
        assert audit.data["reply_message_id"] == message_id

    # the daemon's outbox job sends the stored bytes, with the same Message-ID
    smtp.accept = True
    clock[0] = later
    assert OutboxWorker(store, smtp, SUPPORT, clock=lambda: clock[0]).run_due() == 1  # type: ignore[arg-type]
    assert smtp.sent == [stored]
    assert f"Message-ID: {message_id}".encode() in smtp.sent[0]
    _, state, _, _ = _reply(store, request_id)
    assert state == "sent"

    # sent now: resending again is refused, and nothing changes
    with pytest.raises(ActionRefused, match="is sent; only a failed reply"):
        resend_reply(store, reply_id, by="Petra de Boer", clock=lambda: later)


def test_resend_is_refused_for_unknown_unfailed_and_emptied_replies(store: Store) -> None:
    with pytest.raises(ActionRefused, match="no reply 4711"):
        resend_reply(store, 4711, by="Petra", clock=lambda: T0)
    request_id = submit(processor(store), "r2")
    reply_id, state, _, _ = _reply(store, request_id)
    assert state == "queued"
    with pytest.raises(ActionRefused, match="is queued; only a failed reply can be resent "
                                            r"\(the daemon is still trying it\)"):
        resend_reply(store, reply_id, by="Petra", clock=lambda: T0)
    with pytest.raises(ActionRefused, match="--by"):
        resend_reply(store, reply_id, by="  ", clock=lambda: T0)

    # failed, then emptied by retention: nothing left to send
    with store.unit_of_work() as uow:
        item = uow.outbox.get(reply_id)
        item.state, item.rfc822 = "failed", b""
    with pytest.raises(ActionRefused, match="deleted by retention"):
        resend_reply(store, reply_id, by="Petra", clock=lambda: T0)
    with store.unit_of_work() as uow:
        assert uow.outbox.get(reply_id).state == "failed"
        assert uow.audit_log.entries(request_id=request_id, event="reply_resent") == []


def test_listing_filters_by_state_and_request(store: Store) -> None:
    smtp, clock = Smtp(), [T0]
    request_id, reply_id = _failed_reply(store, smtp, clock)
    other = submit(processor(store), "r3", sender="a.bakker@utrecht.nl")
    with store.unit_of_work() as uow:
        assert [i.id for i in uow.outbox.listing(state="failed")] == [reply_id]
        assert {i.request_id for i in uow.outbox.listing()} == {request_id, other}
        assert [i.request_id for i in uow.outbox.listing(request_id=other)] == [other]
        assert all(isinstance(i, OutboxItem) for i in uow.outbox.listing(limit=1))
