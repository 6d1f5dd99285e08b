"""A fetched batch is committed in one transaction, yet one broken message never takes the
others down with it (issue #4: "one message that breaks processing is quarantined with its
error and never blocks the others"), on SQLite and PostgreSQL.

The breakage is injected where it could really happen (the parser, the decision, the work after
the decision); the repository, the savepoints and the database are real.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import undefer

from reset_mailbot.adapters.db.schema import AuditEntry, Message, OutboxItem, Request
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.domain.message import ParsedMessage
from reset_mailbot.domain.models import Decision, Evidence, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, Outcome
from reset_mailbot.domain.wire import DEFAULT_LIMITS, WireLimits
from reset_mailbot.rules_loader import load_rules
from reset_mailbot.service import inbox
from reset_mailbot.service.filing import PROCESSED, QUARANTINE, PollStats
from reset_mailbot.service.inbox import InboxProcessor
from reset_mailbot.service.inbox_policy import InboxPolicy
from tests.examples import EXAMPLES

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SUPPORT = "support@forus.test"


def raw(n: int) -> bytes:
    return (f"Message-ID: <m{n}@utrecht.nl>\r\nFrom: medewerker{n}@utrecht.nl\r\n"
            f"Subject: 2FA {n}\r\n\r\nbody {n}\r\n").encode()


def complete(parsed: ParsedMessage, _context: DecisionContext, _now: float | None = None
             ) -> Decision:
    """A complete request from the message's own sender (the real core needs DKIM)."""
    n = parsed.message_id.strip("<>").split("@")[0][1:] if parsed.message_id else "x"
    if n == "boom":
        raise RuntimeError("the decision broke")
    account = f"inwoner{n}@hotmail.com"
    request = ResetRequest(
        account_email=account, identity_verified=True, reset_instructed=True,
        evidence=[Evidence(item=Item.ACCOUNT_EMAIL, text=account)],
    )
    return Decision(
        message_id=parsed.message_id, message_key=parsed.key, outcome=Outcome.COMPLETE,
        reply=True, sender=SenderInfo(address=f"medewerker{n}@utrecht.nl",
                                      municipality="Utrecht"),
        request=request, subject=f"2FA {n}",
    )



@pytest.fixture
def processor(store: Store, monkeypatch: pytest.MonkeyPatch) -> InboxProcessor:
    monkeypatch.setattr(inbox, "decide_parsed", complete)
    context = DecisionContext(
        rules=load_rules(None, EXAMPLES / "municipalities.yaml"),
        key_lookup=lambda *_a: None,  # type: ignore[arg-type,return-value]
        support_address=SUPPORT,
    )
    policy = InboxPolicy(support_address=SUPPORT, max_message_bytes=10**6, executor_kind="http")
    return InboxProcessor(store, context, policy, clock=lambda: T0)


def commit(processor: InboxProcessor, raws: list[bytes]) -> tuple[list[tuple[str, int | None]],
                                                                  PollStats]:
    stats = PollStats()
    decided = [processor.decide(r, uid=uid, now=T0) for uid, r in enumerate(raws, start=1)]
    return processor.commit(decided, mailbox="INBOX", uidvalidity=7, stats=stats), stats


def rows(store: Store) -> dict[int | None, Message]:
    with store.unit_of_work() as uow:
        found = {m.uid: m for m in uow.session.scalars(
            select(Message).options(undefer(Message.raw)))}
        uow.session.expunge_all()
    return found


def test_a_batch_commits_every_message_with_its_request_and_reply(
    processor: InboxProcessor, store: Store
) -> None:
    filed, stats = commit(processor, [raw(1), raw(2), raw(3)])
    assert [folder for folder, _ in filed] == [PROCESSED] * 3
    assert stats.decided == 3 and stats.errors == 0
    with store.unit_of_work() as uow:
        assert len(list(uow.session.scalars(select(Request)))) == 3
        assert len(list(uow.session.scalars(select(OutboxItem)))) == 0  # complete: no reply yet
    assert {m.uid: m.outcome for m in rows(store).values()} == {1: "complete", 2: "complete",
                                                                3: "complete"}


def test_work_after_the_decision_that_breaks_is_rolled_back_alone(
    processor: InboxProcessor, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_on = InboxProcessor.act_on

    def breaks_for_the_second(self: InboxProcessor, uow, decision, message, now, parsed):  # type: ignore[no-untyped-def]
        result = act_on(self, uow, decision, message, now, parsed)  # request row written...
        if decision.message_id == "<m2@utrecht.nl>":
            raise RuntimeError("the database said no")  # ...then this message breaks
        return result

    monkeypatch.setattr(InboxProcessor, "act_on", breaks_for_the_second)
    filed, stats = commit(processor, [raw(1), raw(2), raw(3)])
    assert [folder for folder, _ in filed] == [PROCESSED, QUARANTINE, PROCESSED]
    assert stats.decided == 2 and stats.errors == 1
    found = rows(store)
    assert found[2].outcome is None
    assert found[2].error == "RuntimeError: the database said no"
    assert found[2].raw == raw(2)  # kept, so `messages reprocess` can decide it later
    assert found[2].request_id is None
    assert filed[1][1] == found[2].id
    with store.unit_of_work() as uow:
        senders = sorted(r.sender for r in uow.session.scalars(select(Request)))
        events = [e.event for e in uow.session.scalars(
            select(AuditEntry).where(AuditEntry.message_id == found[2].id))]
    # the broken message's request (written before it broke) was rolled back with it
    assert senders == ["medewerker1@utrecht.nl", "medewerker3@utrecht.nl"]
    assert events == ["message_failed"]


def test_a_decision_or_parser_that_raises_is_quarantined_with_its_error(
    processor: InboxProcessor, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken_decision = raw(1).replace(b"<m1@", b"<mboom@")
    unparsable = b"From: nobody\r\n\r\nthe parser chokes on this one"
    parse = inbox.parse_message

    def choking_parser(data: bytes, limits: WireLimits = DEFAULT_LIMITS) -> ParsedMessage:
        if data == unparsable:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "invalid start byte")
        return parse(data, limits)

    monkeypatch.setattr(inbox, "parse_message", choking_parser)
    filed, stats = commit(processor, [broken_decision, unparsable, raw(3)])
    assert [folder for folder, _ in filed] == [QUARANTINE, QUARANTINE, PROCESSED]
    assert stats.errors == 2 and stats.decided == 1
    found = rows(store)
    assert found[1].error == "RuntimeError: the decision broke"
    assert found[1].message_key == "<mboom@utrecht.nl>"
    assert found[2].error is not None and found[2].error.startswith("UnicodeDecodeError")
    assert found[2].message_key.startswith("sha256:")  # no parse, no Message-ID: the bytes
    assert found[3].outcome == "complete"


def test_a_message_twice_in_one_batch_is_decided_once(
    processor: InboxProcessor, store: Store
) -> None:
    replay = raw(1).replace(b"body 1", b"other bytes, same Message-ID")
    filed, _stats = commit(processor, [raw(1), replay])
    assert filed[1] == (PROCESSED, None)  # ignored [duplicate]: no row of its own
    with store.unit_of_work() as uow:
        assert len(list(uow.session.scalars(select(Request)))) == 1
        events = [e.event for e in uow.session.scalars(select(AuditEntry))]
    assert events.count("duplicate_ignored") == 1
