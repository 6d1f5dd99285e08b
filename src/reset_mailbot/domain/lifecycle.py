"""Where a request goes next, as pure functions returning intents (issue #13, the lifecycle).

`request_state.py` says which state may follow which; this module says which one does:
- `route_complete`: a request just became complete. It goes to the approval gate (held by a
  limit, or the gate is on), to a person (manual executor), or to the executor.
- `route_approved`: an approved request goes to the executor or, without one, to a person.
- `after_execution`: what an executor's answer means for the execution and the request.
- `merge_reply`: a same-sender reply merged into an open request: the items it gives and
  whether the request becomes complete.
- `sla_flag`: on the SLA tick, whether an open request is due a warning or a breach notice.

The service and the stores (adapters/db) apply the intents (transition, execution row, audit
event); they do not decide. Every branch is unit-tested without a database
(tests/unit/test_lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from reset_mailbot.domain.models import ResetRequest
from reset_mailbot.domain.request_state import (
    MERGEABLE_STATES,
    InvalidTransition,
    RequestState,
    merge_items,
)


class ExecutionStatus(StrEnum):
    """What an executor answers (adapters/executors implement it)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent: retrying will not help (account not found, ...)
    RETRY = "retry"  # temporary: connection error, timeout, 5xx, lock timeout
    PENDING_HUMAN = "pending_human"  # manual executor: a person must act


class Next(StrEnum):
    AWAIT_APPROVAL = "await_approval"  # transition to awaiting_approval
    AWAIT_MANUAL_RESET = "await_manual_reset"  # transition to awaiting_manual_reset
    EXECUTE = "execute"  # create an execution (the request stays complete until claimed)


@dataclass(frozen=True)
class Hold:
    """A limit that keeps a complete request for a person (service/limits.py finds it)."""

    reason: str  # stable code: rate_limited, staff_account, ...
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    next: Next
    hold: Hold | None = None  # why it waits for approval, when a limit holds it


def route_complete(*, hold: Hold | None, require_approval: bool, executor_kind: str) -> Route:
    """A held request is never automatic: a person approves, even with the gate off."""
    if hold is not None:
        return Route(Next.AWAIT_APPROVAL, hold)
    if require_approval:
        return Route(Next.AWAIT_APPROVAL)
    if executor_kind == "manual":
        return Route(Next.AWAIT_MANUAL_RESET)
    return Route(Next.EXECUTE)


def route_approved(*, has_executor: bool) -> Next:
    """After the second person's approval: run the executor now, or hand it to a person."""
    return Next.EXECUTE if has_executor else Next.AWAIT_MANUAL_RESET


@dataclass(frozen=True)
class ExecutionStep:
    """What one executor answer does: the execution's new state, the request's new state,
    the audit event, and whether the execution is due again (after backoff)."""

    execution_state: str
    request_state: RequestState
    event: str
    retry: bool = False


_AFTER_EXECUTION = {
    ExecutionStatus.SUCCEEDED: ExecutionStep("succeeded", RequestState.EXECUTED,
                                             "execution_succeeded"),
    ExecutionStatus.FAILED: ExecutionStep("failed", RequestState.EXECUTION_FAILED,
                                          "execution_failed"),
    # the request goes back to complete; the execution is due again after capped backoff
    ExecutionStatus.RETRY: ExecutionStep("retry", RequestState.COMPLETE, "execution_retry",
                                         retry=True),
    ExecutionStatus.PENDING_HUMAN: ExecutionStep("pending_human",
                                                 RequestState.AWAITING_MANUAL_RESET,
                                                 "execution_pending_human"),
}


def after_execution(status: ExecutionStatus | str) -> ExecutionStep:
    return _AFTER_EXECUTION[ExecutionStatus(status)]


@dataclass(frozen=True)
class Merge:
    """A reply merged into a request: the items it now holds, and the state it moves to (None:
    it stays where it is)."""

    items: ResetRequest
    becomes: RequestState | None


def merge_reply(state: RequestState | str, held: ResetRequest, reply: ResetRequest) -> Merge:
    """Merge a reply's items into a request in `state` (policy, "Threads": the new text wins).

    Only a request still waiting for items takes a merge (InvalidTransition otherwise: once
    complete, what was approved is what is executed). It becomes complete when nothing is
    missing any more.
    """
    if RequestState(state) not in MERGEABLE_STATES:
        raise InvalidTransition(state, "(merge)")
    items = merge_items(held, reply)
    complete = not items.missing and RequestState(state) is RequestState.INCOMPLETE
    return Merge(items, RequestState.COMPLETE if complete else None)


class SlaFlag(StrEnum):
    WARNING = "sla_warning"
    BREACH = "sla_breach"


def sla_flag(deadline: datetime, now: datetime, *, warn_hours: float) -> SlaFlag | None:
    """The SLA tick for one open request: breach once past its deadline, a warning within
    `warn_hours` of it (0 switches warnings off), else nothing. Each is sent once; the store's
    conditional marker update keeps it so (service/sla.py)."""
    if deadline <= now:
        return SlaFlag.BREACH
    if warn_hours > 0 and deadline <= now + timedelta(hours=warn_hours):
        return SlaFlag.WARNING
    return None
