"""The life of a reset request as a pure state machine, plus the thread merge rule.

Kept free of I/O so that every allowed and forbidden step can be unit-tested, and so that the
storage adapter, the service and the CLI (approve/deny/done) all obey one table instead of each
deciding on their own which state may follow which.

    incomplete ──► complete ──► executing ──► executed
                     │  ▲           │  └────► execution_failed
                     │  └───────────┘ (retry scheduled: temporary executor failure)
                     ├──► awaiting_approval ──► complete (approved) | denied
                     └──► awaiting_manual_reset ──► executed | execution_failed

`executing → awaiting_manual_reset` covers an executor that hands the reset to a person
(manual executor, or an ambiguous account that needs a human).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from reset_mailbot.domain.reasons import Item, MissingDetail

if TYPE_CHECKING:  # the state names are read by the command line's help: keep them light
    from reset_mailbot.domain.models import Evidence, ResetRequest


class RequestState(StrEnum):
    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_MANUAL_RESET = "awaiting_manual_reset"
    EXECUTING = "executing"
    EXECUTED = "executed"
    EXECUTION_FAILED = "execution_failed"
    DENIED = "denied"


class InvalidTransition(ValueError):
    """A state change the table below does not allow; a bug or a stale CLI action."""

    def __init__(self, current: RequestState | str, new: RequestState | str) -> None:
        super().__init__(f"request cannot go from {current!s} to {new!s}")
        self.current = current
        self.new = new


S = RequestState

#: A new request starts in one of these (complete when the first message carries every item).
INITIAL_STATES: frozenset[RequestState] = frozenset({S.INCOMPLETE, S.COMPLETE})

ALLOWED_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    S.INCOMPLETE: frozenset({S.COMPLETE}),
    S.COMPLETE: frozenset({S.EXECUTING, S.AWAITING_APPROVAL, S.AWAITING_MANUAL_RESET}),
    S.AWAITING_APPROVAL: frozenset({S.COMPLETE, S.DENIED}),
    S.AWAITING_MANUAL_RESET: frozenset({S.EXECUTED, S.EXECUTION_FAILED}),
    S.EXECUTING: frozenset({S.EXECUTED, S.EXECUTION_FAILED, S.COMPLETE, S.AWAITING_MANUAL_RESET}),
    S.EXECUTED: frozenset(),
    S.EXECUTION_FAILED: frozenset(),
    S.DENIED: frozenset(),
}

#: No further change: the request's story is finished.
FINAL_STATES: frozenset[RequestState] = frozenset(
    state for state, nexts in ALLOWED_TRANSITIONS.items() if not nexts
)

#: A reply in the thread from the same sender is merged only into a request still waiting for
#: items; once complete, its account and instruction are fixed (what was approved is executed).
MERGEABLE_STATES: frozenset[RequestState] = frozenset({S.INCOMPLETE})


def can_transition(current: RequestState | str, new: RequestState | str) -> bool:
    return RequestState(new) in ALLOWED_TRANSITIONS[RequestState(current)]


def validate_transition(current: RequestState | str, new: RequestState | str) -> RequestState:
    """Return the new state, or raise InvalidTransition (also for unknown state names)."""
    try:
        cur, nxt = RequestState(current), RequestState(new)
    except ValueError:
        raise InvalidTransition(current, new) from None
    if nxt not in ALLOWED_TRANSITIONS[cur]:
        raise InvalidTransition(cur, nxt)
    return nxt


# Missing-item details that are an explicit statement in the new text ("nee", "not verified",
# two addresses): they override an earlier value. A plain "not found" does not.
_EXPLICIT_REFUSALS: frozenset[MissingDetail] = frozenset(
    {MissingDetail.NEGATED, MissingDetail.TEMPLATE_NO, MissingDetail.AMBIGUOUS,
     MissingDetail.CONDITIONAL, MissingDetail.INVALID}
)


def merge_items(old: ResetRequest, new: ResetRequest) -> ResetRequest:
    """Merge a follow-up into an earlier request (policy, "Threads": the new text wins).

    An item the new text states wins; an item the new text explicitly refuses (negated, "nee",
    ambiguous addresses) is refused again, because that is the newest word; an item the new text
    does not mention keeps its earlier value and evidence.
    """
    from reset_mailbot.domain.models import ResetRequest

    overridden: set[Item] = set()
    details = dict(old.missing_details)

    def pick_flag(item: Item, old_value: bool, new_value: bool) -> bool:
        if new_value:
            overridden.add(item)
            details.pop(item, None)
            return True
        detail = new.missing_details.get(item)
        if detail in _EXPLICIT_REFUSALS:
            overridden.add(item)
            details[item] = detail
            return False
        return old_value

    account_email = old.account_email
    if new.account_email is not None:
        account_email = new.account_email
        overridden.add(Item.ACCOUNT_EMAIL)
        details.pop(Item.ACCOUNT_EMAIL, None)
    elif new.missing_details.get(Item.ACCOUNT_EMAIL) in _EXPLICIT_REFUSALS:
        account_email = None
        overridden.add(Item.ACCOUNT_EMAIL)
        details[Item.ACCOUNT_EMAIL] = new.missing_details[Item.ACCOUNT_EMAIL]

    identity = pick_flag(Item.IDENTITY_VERIFIED, old.identity_verified, new.identity_verified)
    instructed = pick_flag(Item.RESET_INSTRUCTED, old.reset_instructed, new.reset_instructed)
    evidence: list[Evidence] = [e for e in old.evidence if e.item not in overridden]
    evidence += [e for e in new.evidence if e.item in overridden]
    merged = ResetRequest(
        account_email=account_email,
        identity_verified=identity,
        reset_instructed=instructed,
        case_reference=new.case_reference or old.case_reference,
        evidence=evidence,
    )
    merged.missing_details = {k: v for k, v in details.items() if k in merged.missing}
    return merged
