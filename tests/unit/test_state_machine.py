"""The request state machine and the thread merge rule (pure, no database)."""

from __future__ import annotations

import itertools

import pytest

from reset_mailbot.domain.models import Evidence, ResetRequest
from reset_mailbot.domain.reasons import Item, MissingDetail
from reset_mailbot.domain.request_state import (
    ALLOWED_TRANSITIONS,
    FINAL_STATES,
    INITIAL_STATES,
    MERGEABLE_STATES,
    InvalidTransition,
    RequestState,
    can_transition,
    merge_items,
    validate_transition,
)

S = RequestState

ALLOWED = [
    (S.INCOMPLETE, S.COMPLETE),
    (S.COMPLETE, S.EXECUTING),
    (S.COMPLETE, S.AWAITING_APPROVAL),
    (S.COMPLETE, S.AWAITING_MANUAL_RESET),
    (S.AWAITING_APPROVAL, S.COMPLETE),
    (S.AWAITING_APPROVAL, S.DENIED),
    (S.AWAITING_MANUAL_RESET, S.EXECUTED),
    (S.AWAITING_MANUAL_RESET, S.EXECUTION_FAILED),
    (S.EXECUTING, S.EXECUTED),
    (S.EXECUTING, S.EXECUTION_FAILED),
    (S.EXECUTING, S.COMPLETE),
    (S.EXECUTING, S.AWAITING_MANUAL_RESET),
]


def test_the_table_is_exactly_the_documented_transitions() -> None:
    table = {(a, b) for a, nexts in ALLOWED_TRANSITIONS.items() for b in nexts}
    assert table == set(ALLOWED)
    assert set(ALLOWED_TRANSITIONS) == set(RequestState)


@pytest.mark.parametrize(("current", "new"), ALLOWED)
def test_allowed_transition(current: RequestState, new: RequestState) -> None:
    assert can_transition(current, new)
    assert validate_transition(current, new) is new
    assert validate_transition(current.value, new.value) is new


FORBIDDEN = [
    (S.INCOMPLETE, S.EXECUTING),  # nothing runs before the request is complete
    (S.INCOMPLETE, S.EXECUTED),
    (S.INCOMPLETE, S.AWAITING_APPROVAL),
    (S.COMPLETE, S.EXECUTED),  # only through executing
    (S.COMPLETE, S.INCOMPLETE),
    (S.COMPLETE, S.DENIED),
    (S.AWAITING_APPROVAL, S.EXECUTING),  # approval goes back to complete, then runs
    (S.AWAITING_APPROVAL, S.EXECUTED),
    (S.AWAITING_MANUAL_RESET, S.EXECUTING),
    (S.EXECUTING, S.INCOMPLETE),
    (S.EXECUTING, S.DENIED),
    (S.EXECUTED, S.EXECUTING),  # never a second reset
    (S.EXECUTED, S.COMPLETE),
    (S.EXECUTION_FAILED, S.EXECUTING),
    (S.DENIED, S.COMPLETE),
    (S.DENIED, S.EXECUTING),
]


@pytest.mark.parametrize(("current", "new"), FORBIDDEN)
def test_forbidden_transition(current: RequestState, new: RequestState) -> None:
    assert not can_transition(current, new)
    with pytest.raises(InvalidTransition) as info:
        validate_transition(current, new)
    assert info.value.current == current and info.value.new == new


def test_no_state_transitions_to_itself() -> None:
    for state in RequestState:
        with pytest.raises(InvalidTransition):
            validate_transition(state, state)


def test_final_states_have_no_way_out() -> None:
    assert {S.EXECUTED, S.EXECUTION_FAILED, S.DENIED} == FINAL_STATES
    for final, other in itertools.product(FINAL_STATES, RequestState):
        assert not can_transition(final, other)


def test_unknown_state_names_are_invalid_transitions() -> None:
    with pytest.raises(InvalidTransition):
        validate_transition("incomplete", "launched")
    with pytest.raises(InvalidTransition):
        validate_transition("limbo", "complete")


def test_initial_and_mergeable_states() -> None:
    assert {S.INCOMPLETE, S.COMPLETE} == INITIAL_STATES
    assert {S.INCOMPLETE} == MERGEABLE_STATES


# ----------------------------------------------------------------- merge rule


def _ev(item: Item, text: str) -> Evidence:
    return Evidence(item=item, text=text)


def test_merge_fills_the_missing_items_and_keeps_earlier_ones() -> None:
    old = ResetRequest(
        account_email="jan@example.org",
        reset_instructed=True,
        evidence=[_ev(Item.ACCOUNT_EMAIL, "E-mailadres: jan@example.org"),
                  _ev(Item.RESET_INSTRUCTED, "Graag de 2FA resetten.")],
        missing_details={Item.IDENTITY_VERIFIED: MissingDetail.NOT_FOUND},
    )
    new = ResetRequest(
        identity_verified=True,
        evidence=[_ev(Item.IDENTITY_VERIFIED, "Identiteit gecontroleerd: ja")],
        missing_details={Item.ACCOUNT_EMAIL: MissingDetail.NOT_FOUND,
                         Item.RESET_INSTRUCTED: MissingDetail.NOT_FOUND},
    )
    merged = merge_items(old, new)
    assert merged.account_email == "jan@example.org"
    assert merged.identity_verified and merged.reset_instructed
    assert merged.missing == []
    assert merged.missing_details == {}
    assert {e.item for e in merged.evidence} == set(Item)


def test_merge_new_text_wins_on_conflict() -> None:
    old = ResetRequest(account_email="old@example.org", case_reference="Z-1",
                       evidence=[_ev(Item.ACCOUNT_EMAIL, "account: old@example.org")])
    new = ResetRequest(account_email="new@example.org", case_reference="Z-2",
                       evidence=[_ev(Item.ACCOUNT_EMAIL, "account: new@example.org")])
    merged = merge_items(old, new)
    assert merged.account_email == "new@example.org"
    assert merged.case_reference == "Z-2"
    assert [e.text for e in merged.evidence] == ["account: new@example.org"]


def test_merge_explicit_refusal_in_new_text_wins() -> None:
    old = ResetRequest(account_email="a@example.org", identity_verified=True,
                       reset_instructed=True)
    new = ResetRequest(
        missing_details={Item.IDENTITY_VERIFIED: MissingDetail.NEGATED,
                         Item.ACCOUNT_EMAIL: MissingDetail.AMBIGUOUS,
                         Item.RESET_INSTRUCTED: MissingDetail.NOT_FOUND},
    )
    merged = merge_items(old, new)
    assert merged.identity_verified is False
    assert merged.account_email is None
    assert merged.reset_instructed is True  # not mentioned: keeps the earlier statement
    assert merged.missing_details == {Item.IDENTITY_VERIFIED: MissingDetail.NEGATED,
                                      Item.ACCOUNT_EMAIL: MissingDetail.AMBIGUOUS}


def test_merge_keeps_case_reference_when_new_has_none() -> None:
    merged = merge_items(ResetRequest(case_reference="Z-9"), ResetRequest())
    assert merged.case_reference == "Z-9"
