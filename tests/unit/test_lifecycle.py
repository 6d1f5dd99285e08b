"""Where a request goes next (domain/lifecycle.py): every branch without a database."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.lifecycle import (
    ExecutionStatus,
    Hold,
    Next,
    after_execution,
    route_approved,
    route_complete,
)
from reset_mailbot.domain.request_state import RequestState, can_transition

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
