"""What a decision means given what was decided before (issue #13): duplicate, resumed and
follow-up-on-a-closed-request are decisions with reasons, composed here, not in the service.

`decide()` judges one message alone. The daemon and `check --db` then ask the store for the
`Facts` about it (an earlier message under the same key or DKIM signature, the sender's request
in the thread) and call `decide_in_context`, so `check` explains exactly what the daemon does.
Pure: the facts are plain values an adapter gathered.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import MissingDetail, Outcome, ReasonCode


@dataclass(frozen=True)
class EarlierMessage:
    """A message decided before, as the store has it."""

    key: str
    sha256: str | None
    outcome: str | None
    reply: bool
    decidable_again: bool = False  # deferred, or broke processing: it gets another decision


@dataclass(frozen=True)
class ThreadRequest:
    """The sender's request that a reply's thread (In-Reply-To, References, [R-...]) names."""

    id: str
    state: str


@dataclass(frozen=True)
class Facts:
    """What the store knows about a decided message; all None: nothing (a new message)."""

    same_key: EarlierMessage | None = None
    same_signature: EarlierMessage | None = None  # under another key: a replay
    open_request: ThreadRequest | None = None  # mergeable (incomplete)
    closed_request: ThreadRequest | None = None  # any other state


class Standing(StrEnum):
    NEW = "new"  # record it and act on it
    RESUMED = "resumed"  # the same bytes again (a crash before the MOVE): only file it
    DUPLICATE = "duplicate"  # ignored [duplicate]: other bytes under a decided key/signature
    FOLLOWUP = "followup"  # ignored [closed_request_followup], noted on that request


@dataclass(frozen=True)
class InContext:
    decision: Decision
    standing: Standing
    earlier: EarlierMessage | None = None
    closed_request: ThreadRequest | None = None


def names_anything(decision: Decision) -> bool:
    """Whether the sender's new text holds any item, found or explicitly refused."""
    request = decision.request
    return (
        request.account_email is not None
        or request.identity_verified
        or request.reset_instructed
        or any(detail is not MissingDetail.NOT_FOUND
               for detail in request.missing_details.values())
    )


def as_duplicate(decision: Decision, earlier_key: str) -> Decision:
    """The decision for a message whose key or signature was decided before: ignored
    [duplicate] (the daemon's record and `check` over several files both use this)."""
    return decision.model_copy(update={
        "outcome": Outcome.IGNORED, "reasons": [ReasonCode.DUPLICATE], "missing": [],
        "reply": False, "detail": f"already decided as {earlier_key}",
    })


def as_followup(decision: Decision, request: ThreadRequest) -> Decision:
    """A "thanks" or "any news?" in the thread of the sender's own closed request: answering
    "incomplete" and opening a new request would confuse the municipality and could start a
    mail loop, so it is ignored [closed_request_followup] and noted on that request."""
    return decision.model_copy(update={
        "outcome": Outcome.IGNORED, "reasons": [ReasonCode.CLOSED_REQUEST_FOLLOWUP],
        "missing": [], "reply": False,
        "detail": f"follow-up on request {request.id} ({request.state})",
    })


def decide_in_context(decision: Decision, facts: Facts, sha256: str | None) -> InContext:
    """`decision` (of a message with these bytes' `sha256`) given what was decided before.

    In order: a DKIM signature seen under another key is a replay; the same key decided before
    is the same message resumed (same bytes) or a replay (other bytes), unless that earlier
    decision may be made again (deferred, broken); an incomplete message that names nothing, in
    the thread of the sender's closed request (and no open one), is a follow-up on it."""
    replayed = facts.same_signature
    if replayed is not None and replayed.key != decision.message_key:
        return InContext(as_duplicate(decision, replayed.key), Standing.DUPLICATE, replayed)
    earlier = facts.same_key
    if earlier is not None and not earlier.decidable_again:
        if sha256 is not None and earlier.sha256 == sha256:
            return InContext(decision, Standing.RESUMED, earlier)
        return InContext(as_duplicate(decision, earlier.key), Standing.DUPLICATE, earlier)
    closed = facts.closed_request
    if (decision.outcome is Outcome.INCOMPLETE and not names_anything(decision)
            and facts.open_request is None and closed is not None):
        return InContext(as_followup(decision, closed), Standing.FOLLOWUP, closed_request=closed)
    return InContext(decision, Standing.NEW)
