"""Deciding a stored message again after a rules fix (`reset-mailbot messages reprocess ID`).

The rule, chosen so that reprocessing can never act twice:

1. **Only messages that caused no reset may be reprocessed**: outcome `deferred`, `rejected`,
   `incomplete` or `ignored`, or a processing error (no outcome). A `complete` message is
   refused, and so is any message whose request has left `incomplete` (complete, waiting for
   approval or a person, executing, executed, failed, denied): that request was or may be
   acted on already.
2. **The stored raw bytes are decided again** with the current rules, the same way the daemon
   decides (same parsing, same decision context). Without raw bytes (purged by retention,
   or an oversize message that was never downloaded) there is nothing to decide: refused.
3. **One request per thread.** A message that belongs to an `incomplete` request is merged
   into THAT request (never a second request for the same thread, which a later follow-up
   could complete and execute a second time). If the merge completes it, the request takes
   the normal path: deadline, approval gate or one execution with the request's idempotency
   key. A message without a request is handled exactly as a newly arrived one (new request,
   thread merge, rejection reply).
4. **No duplicate replies.** If the new decision has the same outcome, reasons and missing
   items as the old one, only the decision is recorded: no reply, no request change. A
   request that stays incomplete gets no second "incomplete" reply.
5. **No second reset for the same account.** A message that becomes `complete` is refused
   when another request for the same account address was created since the message arrived
   and got past `incomplete` (the municipality probably sent it again and it was handled).
6. **Race-free.** The checks are made again inside the writing transaction, with the message
   and request rows locked (PostgreSQL `FOR UPDATE`; SQLite's write lock), and refused if
   the message was decided by someone else in between. A deferred or failed message that is
   still in the inbox belongs to the daemon, which decides it again by itself: refused, so
   the two never decide the same message at the same time. Should the daemon merge a
   follow-up into the same request meanwhile, the request still has one execution: its
   idempotency key is derived from the request id and unique.

Every reprocess is audited (`message_reprocessed`, with the operator, the previous and the new
outcome) and logged. The IMAP copy is not moved: it stays in the folder it was filed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.requests import request_items
from reset_mailbot.adapters.db.schema import Message, Request
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork
from reset_mailbot.domain.decision import decide_parsed
from reset_mailbot.domain.lifecycle import merge_reply
from reset_mailbot.domain.message import ParsedMessage, parse_message
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.logs import get_logger
from reset_mailbot.service.inbox import InboxProcessor

log = get_logger("reset_mailbot.reprocess")

REPROCESSABLE_OUTCOMES = frozenset({
    Outcome.DEFERRED.value, Outcome.REJECTED.value, Outcome.INCOMPLETE.value,
    Outcome.IGNORED.value,
})
REPROCESS_MARK = "reprocess requested"


class MessageNotFound(LookupError):
    """No message with that id."""


class ReprocessRefused(Exception):
    """The message may not (or cannot) be decided again; the text says why."""


@dataclass(frozen=True)
class ReprocessResult:
    message_id: int
    previous_outcome: str | None
    previous_reasons: list[str]
    previous_error: str | None
    outcome: str
    reasons: list[str]
    missing: list[str]
    acted: bool  # False: same result as before, only recorded
    request_id: str | None
    request_state: str | None
    detail: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "previous": {"outcome": self.previous_outcome, "reasons": self.previous_reasons,
                         "error": self.previous_error},
            "outcome": self.outcome,
            "reasons": self.reasons,
            "missing": self.missing,
            "acted": self.acted,
            "request_id": self.request_id,
            "request_state": self.request_state,
        }


def refusal(message: Message) -> str | None:
    """Why `message` may not be reprocessed, or None when it may (rules 1 and 2)."""
    failed = message.outcome is None and message.error is not None
    request = message.request
    if request is not None and request.state != RequestState.INCOMPLETE:
        return (f"message {message.id} belongs to request {request.id}, which is "
                f"{request.state}: reprocessing could act on it twice")
    if message.outcome is None and not failed:
        return f"message {message.id} has not been decided yet"
    if not failed and message.outcome not in REPROCESSABLE_OUTCOMES:
        return (f"message {message.id} is {message.outcome}: only deferred, rejected, "
                "incomplete, ignored or failed messages can be reprocessed")
    daemons = failed or message.outcome == Outcome.DEFERRED.value
    if daemons and message.folder_moved_to is None and message.uid is not None:
        return (f"message {message.id} is still in the inbox: the daemon decides it again "
                "by itself; reprocess it once it has been filed")
    if message.raw is None:
        if message.raw_purged_at is not None:
            return (f"message {message.id}: its raw bytes were deleted by retention on "
                    f"{message.raw_purged_at:%Y-%m-%d}; it cannot be decided again")
        return f"message {message.id}: its raw bytes were never stored (e.g. oversize)"
    return None


def _handled_elsewhere(uow: UnitOfWork, message: Message, decision: Decision) -> Request | None:
    """Rule 5: a request for the same account, created since the message, past incomplete."""
    account = (decision.request.account_email or "").strip()
    if not account or message.received_at is None:
        return None
    return queries.later_request_for_account(uow, account, message.received_at,
                                             other_than=message.request_id)


def reprocess_message(
    store: Store,
    processor: InboxProcessor,
    message_pk: int,
    *,
    actor: str,
    now: datetime | None = None,
) -> ReprocessResult:
    """Decide message `message_pk` again with the current rules; see the module doc for why."""
    now = now or store.clock()
    with store.unit_of_work() as uow:
        row = uow.messages.get(message_pk)
        if row is None:
            raise MessageNotFound(f"no message {message_pk}")
        reason = refusal(row)
        if reason:
            raise ReprocessRefused(reason)
        raw = row.raw
        received = row.received_at
        stamp = (row.attempts, row.decided_at, row.outcome, row.error)
    assert raw is not None
    parsed = parse_message(raw, processor.context.limits)
    # a request's age is judged at its arrival: a rules fix days later does not make it stale
    decision = decide_parsed(parsed, processor.context, received.timestamp())

    with store.unit_of_work() as uow:
        row = uow.messages.lock(message_pk)
        assert row is not None
        if (row.attempts, row.decided_at, row.outcome, row.error) != stamp:
            raise ReprocessRefused(f"message {message_pk} was decided again meanwhile; retry")
        request = None
        if row.request_id is not None:
            request = uow.requests.lock(row.request_id)
        reason = refusal(row)
        if reason:
            raise ReprocessRefused(reason)
        if decision.message_key != row.message_key:
            raise ReprocessRefused(f"message {message_pk}: stored bytes give another key")
        if decision.outcome is Outcome.COMPLETE:
            other = _handled_elsewhere(uow, row, decision)
            if other is not None:
                raise ReprocessRefused(
                    f"message {message_pk}: request {other.id} for the same account was "
                    f"created since ({other.state}); not deciding it into a second reset"
                )
        previous_outcome, previous_error = row.outcome, row.error
        previous_reasons = list(row.reasons or [])
        previous_missing = list((row.decision or {}).get("missing") or [])
        new_reasons = [r.value for r in decision.reasons]
        new_missing = [m.value for m in decision.missing]
        unchanged = (previous_outcome == decision.outcome.value
                     and previous_reasons == new_reasons and previous_missing == new_missing)

        # make the row decidable again (MessageStore.may_decide_again), then record as usual
        row.outcome = None
        row.error = REPROCESS_MARK
        message = uow.messages.record(
            decision, raw=raw, sha256=row.sha256, size=row.size, mailbox=row.mailbox,
            uidvalidity=row.uidvalidity, uid=row.uid, received_at=row.received_at, now=now,
        )
        acted = False
        if unchanged:
            pass  # rule 4
        elif request is not None:
            if decision.outcome in (Outcome.COMPLETE, Outcome.INCOMPLETE):
                acted = _merge_into_own_request(uow, processor, request, decision, message, now,
                                                parsed)
        else:
            request = processor.act_on(uow, decision, message, now, parsed)
            acted = True
        uow.audit_log.append(
            "message_reprocessed", message=message, request=request, actor=actor, now=now,
            data={"previous_outcome": previous_outcome, "previous_reasons": previous_reasons,
                  "previous_error": previous_error, "outcome": decision.outcome.value,
                  "reasons": new_reasons, "missing": new_missing, "acted": acted},
        )
        result = ReprocessResult(
            message_id=message_pk, previous_outcome=previous_outcome,
            previous_reasons=previous_reasons, previous_error=previous_error,
            outcome=decision.outcome.value, reasons=new_reasons, missing=new_missing,
            acted=acted, request_id=request.id if request is not None else None,
            request_state=request.state if request is not None else None,
        )
    log.info(
        "message_reprocessed", message_pk=message_pk, message_id=decision.message_id,
        previous_outcome=previous_outcome, outcome=result.outcome, reasons=result.reasons,
        acted=acted, request_id=result.request_id, request_state=result.request_state,
        actor=actor,
    )
    return result


def _merge_into_own_request(
    uow: UnitOfWork,
    processor: InboxProcessor,
    request: Request,
    decision: Decision,
    message: Message,
    now: datetime,
    parsed: ParsedMessage,
) -> bool:
    """Rule 3: merge into the message's own incomplete request; True when it became complete."""
    sender = (decision.sender.address or "").strip().lower()
    if sender != request.sender:
        return False
    if merge_reply(request.state, request_items(request), decision.request).becomes is None:
        uow.requests.merge(request, decision, message, now=now)  # no second reply
        return False
    if not message.message_id:
        raise ReprocessRefused(
            f"message {message.id} has no Message-ID to find its request {request.id} by"
        )
    # The inbox's own path (merge, deadline, approval gate, one execution), pointed at this
    # request through the message's own Message-ID, which is one of the request's thread ids.
    threaded = decision.model_copy(
        update={"references": [*decision.references, message.message_id]}
    )
    merged = processor.act_on(uow, threaded, message, now, parsed)
    if merged is None or merged.id != request.id:
        raise ReprocessRefused(f"message {message.id}: could not merge into {request.id}")
    return True
