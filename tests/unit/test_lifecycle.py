"""Where a request goes next (domain/lifecycle.py): every branch without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reset_mailbot.domain.lifecycle import (
    ExecutionStatus,
    Hold,
    Next,
    SlaFlag,
    after_execution,
    merge_reply,
    route_approved,
    route_complete,
    sla_flag,
)
from reset_mailbot.domain.models import ResetRequest
from reset_mailbot.domain.reasons import Item, MissingDetail
from reset_mailbot.domain.request_state import InvalidTransition, RequestState, can_transition

HELD = Hold("rate_limited", "6 resets for Utrecht in the last 24 hours", {"count": 6})


@pytest.mark.parametrize(("hold", "gate", "kind", "expected"), [
    (HELD, False, "http", Next.AWAIT_APPROVAL),  # a limit: a person, even with the gate off
    (HELD, False, "manual", Next.AWAIT_APPROVAL),
    (None, True, "http", Next.AWAIT_APPROVAL),
    (None, True, "manual", Next.AWAIT_APPROVAL),
    (None, False, "manual", Next.AWAIT_MANUAL_RESET),
    (None, False, "http", Next.EXECUTE),
    (None, False, "forus-db", Next.EXECUTE),
])
def test_route_complete(hold: Hold | None, gate: bool, kind: str, expected: Next) -> None:
    route = route_complete(hold=hold, require_approval=gate, executor_kind=kind)
    assert route.next is expected
    assert route.hold is hold


def test_route_approved() -> None:
    assert route_approved(has_executor=True) is Next.EXECUTE
    assert route_approved(has_executor=False) is Next.AWAIT_MANUAL_RESET


@pytest.mark.parametrize(("status", "request_state", "retry"), [
    (ExecutionStatus.SUCCEEDED, RequestState.EXECUTED, False),
    (ExecutionStatus.FAILED, RequestState.EXECUTION_FAILED, False),
    (ExecutionStatus.RETRY, RequestState.COMPLETE, True),
    (ExecutionStatus.PENDING_HUMAN, RequestState.AWAITING_MANUAL_RESET, False),
])
def test_after_execution(status: ExecutionStatus, request_state: RequestState,
                         retry: bool) -> None:
    step = after_execution(status)
    assert (step.request_state, step.retry) == (request_state, retry)
    assert step.execution_state == status.value
    # every step is one the state machine allows from a running execution
    assert can_transition(RequestState.EXECUTING, step.request_state)


def test_every_status_has_a_step() -> None:
    assert {after_execution(s).event for s in ExecutionStatus} == {
        "execution_succeeded", "execution_failed", "execution_retry", "execution_pending_human"}


HELD_ITEMS = ResetRequest(account_email="resident@example.org", identity_verified=True)


def test_a_reply_that_gives_the_last_item_completes_the_request() -> None:
    merge = merge_reply(RequestState.INCOMPLETE, HELD_ITEMS,
                        ResetRequest(reset_instructed=True))
    assert merge.becomes is RequestState.COMPLETE
    assert merge.items.account_email == "resident@example.org"
    assert merge.items.identity_verified and merge.items.reset_instructed
    assert can_transition(RequestState.INCOMPLETE, merge.becomes)


def test_a_reply_that_leaves_an_item_missing_keeps_the_request_waiting() -> None:
    merge = merge_reply(RequestState.INCOMPLETE, HELD_ITEMS, ResetRequest(case_reference="Z-1"))
    assert merge.becomes is None
    assert merge.items.missing == [Item.RESET_INSTRUCTED]
    assert merge.items.case_reference == "Z-1"


def test_the_newest_word_wins_also_when_it_withdraws_an_item() -> None:
    """The reply says identity was NOT checked: the earlier confirmation no longer counts."""
    withdrawn = ResetRequest(reset_instructed=True,
                             missing_details={Item.IDENTITY_VERIFIED: MissingDetail.NEGATED})
    merge = merge_reply(RequestState.INCOMPLETE, HELD_ITEMS, withdrawn)
    assert merge.becomes is None
    assert merge.items.missing == [Item.IDENTITY_VERIFIED]


@pytest.mark.parametrize("state", [s for s in RequestState if s is not RequestState.INCOMPLETE])
def test_only_a_request_waiting_for_items_takes_a_merge(state: RequestState) -> None:
    """Once complete, what was approved is what is executed: a reply cannot change it."""
    with pytest.raises(InvalidTransition):
        merge_reply(state, HELD_ITEMS, ResetRequest(account_email="other@example.org"))


NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("deadline", "warn_hours", "expected"), [
    (NOW - timedelta(seconds=1), 8, SlaFlag.BREACH),
    (NOW, 8, SlaFlag.BREACH),  # the deadline itself is past the promise
    (NOW - timedelta(days=3), 0, SlaFlag.BREACH),  # warnings off, breaches still flagged
    (NOW + timedelta(hours=8), 8, SlaFlag.WARNING),
    (NOW + timedelta(hours=1), 8, SlaFlag.WARNING),
    (NOW + timedelta(hours=8, seconds=1), 8, None),
    (NOW + timedelta(hours=1), 0, None),
])
def test_sla_tick(deadline: datetime, warn_hours: float, expected: SlaFlag | None) -> None:
    assert sla_flag(deadline, NOW, warn_hours=warn_hours) is expected
