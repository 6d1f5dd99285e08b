"""decide_in_context (domain/context.py): duplicate, resumed and follow-up-on-a-closed-request
are decisions composed in the core from plain facts, the same for the daemon and `check --db`."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.context import (
    EarlierMessage,
    Facts,
    Standing,
    ThreadRequest,
    decide_in_context,
)
from reset_mailbot.domain.models import Decision, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, MissingDetail, Outcome, ReasonCode

KEY = "<a1@utrecht.nl>"
SHA = "ab" * 32


def decision(outcome: Outcome = Outcome.COMPLETE, request: ResetRequest | None = None,
             key: str = KEY) -> Decision:
    return Decision(
        message_id=key, message_key=key, outcome=outcome, reply=True,
        sender=SenderInfo(address="j.jansen@utrecht.nl", municipality="Utrecht"),
        request=request or ResetRequest(account_email="a@b.nl", identity_verified=True,
                                        reset_instructed=True),
    )


def thanks() -> Decision:
    """An incomplete message that names nothing ("Dank je wel!")."""
    return decision(Outcome.INCOMPLETE, ResetRequest(missing_details={
        Item.ACCOUNT_EMAIL: MissingDetail.NOT_FOUND}))


def earlier(key: str = KEY, sha: str | None = SHA, again: bool = False) -> EarlierMessage:
    return EarlierMessage(key=key, sha256=sha, outcome="complete", reply=True,
                          decidable_again=again)


def test_nothing_known_is_a_new_message() -> None:
    placed = decide_in_context(decision(), Facts(), SHA)
    assert placed.standing is Standing.NEW and placed.decision == decision()


def test_the_same_bytes_again_are_resumed_and_keep_their_decision() -> None:
    placed = decide_in_context(decision(), Facts(same_key=earlier()), SHA)
    assert placed.standing is Standing.RESUMED
    assert placed.decision.outcome is Outcome.COMPLETE


@pytest.mark.parametrize("facts", [
    Facts(same_key=earlier(sha="cd" * 32)),  # other bytes under a decided Message-ID
    Facts(same_signature=earlier(key="<other@utrecht.nl>")),  # a DKIM signature seen before
])
def test_a_replay_is_ignored_as_duplicate(facts: Facts) -> None:
    placed = decide_in_context(decision(), facts, SHA)
    assert placed.standing is Standing.DUPLICATE
    assert placed.decision.outcome is Outcome.IGNORED
    assert placed.decision.reasons == [ReasonCode.DUPLICATE]
    assert not placed.decision.reply


def test_a_deferred_message_is_decided_again() -> None:
    placed = decide_in_context(decision(), Facts(same_key=earlier(sha="cd" * 32, again=True)),
                               SHA)
    assert placed.standing is Standing.NEW


def test_its_own_signature_under_its_own_key_is_no_replay() -> None:
    placed = decide_in_context(decision(), Facts(same_signature=earlier(again=True),
                                                 same_key=earlier(again=True)), SHA)
    assert placed.standing is Standing.NEW


def test_thanks_on_a_closed_request_is_a_followup() -> None:
    closed = ThreadRequest("R-ABCD2345", "executed")
    placed = decide_in_context(thanks(), Facts(closed_request=closed), SHA)
    assert placed.standing is Standing.FOLLOWUP
    assert placed.decision.reasons == [ReasonCode.CLOSED_REQUEST_FOLLOWUP]
    assert not placed.decision.reply and placed.closed_request == closed


@pytest.mark.parametrize(("message", "facts"), [
    # an open request in the thread: merged as usual
    (thanks(), Facts(open_request=ThreadRequest("R-1", "incomplete"),
                     closed_request=ThreadRequest("R-2", "executed"))),
    # it names something itself: a request of its own
    (decision(Outcome.INCOMPLETE, ResetRequest(account_email="x@y.nl")),
     Facts(closed_request=ThreadRequest("R-2", "executed"))),
    # complete: never a follow-up
    (decision(), Facts(closed_request=ThreadRequest("R-2", "executed"))),
])
def test_what_is_not_a_followup(message: Decision, facts: Facts) -> None:
    assert decide_in_context(message, facts, SHA).standing is Standing.NEW
