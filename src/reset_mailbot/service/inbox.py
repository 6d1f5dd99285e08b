"""Processing the support mailbox, one message at a time (Mailman's runner, cosmicpython's service).

For each UID in the inbox: decide with the pure core, then record the decision, the new or merged
request, the queued replies and the execution intent in ONE transaction, and only after that
commit MOVE the message out of the inbox. MOVEs are sent a batch at a time (`PendingMoves`): one
UID MOVE costs about as much for fifty messages as for one. A crash anywhere leaves either
nothing recorded (the message is still in the inbox and is decided again) or a committed decision
whose MOVE is finished (or, if the MOVE went out, recorded) on the next poll. A message that
breaks processing is recorded with its error and moved to quarantine; the loop goes on.

Folders: complete, incomplete, ignored and answered rejections go to Processed; rejections we
do not answer (unauthenticated, not allowlisted, malformed, oversize) and processing errors go to
Quarantine; deferred messages stay in the inbox until a later poll decides them again.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reset_mailbot.adapters.db.repository import (
    Backoff,
    DuplicateMessage,
    Store,
    UnitOfWork,
)
from reset_mailbot.adapters.db.schema import Message, Request, utcnow
from reset_mailbot.adapters.imap import Mailbox
from reset_mailbot.domain.decision import DecisionContext, decide_parsed
from reset_mailbot.domain.language import message_language
from reset_mailbot.domain.message import ParsedMessage, parse_message
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import MissingDetail, Outcome, ReasonCode
from reset_mailbot.domain.replies import ReplyData, ReplyKind
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.domain.working_days import deadline
from reset_mailbot.logs import get_logger
from reset_mailbot.service.failpoints import failpoint
from reset_mailbot.service.limits import ResetLimits, hold_reason
from reset_mailbot.service.replies import queue_reply, reply_data_for_request

log = get_logger("reset_mailbot.inbox")

PROCESSED = "processed"
QUARANTINE = "quarantine"
STAY = "stay"


@dataclass(frozen=True)
class InboxPolicy:
    """The settings the inbox processing needs (from [mailbox], [executor] and [sla])."""

    support_address: str
    max_message_bytes: int
    executor_kind: str = "manual"
    require_approval: bool = False
    sla_working_days: int = 2
    sla_timezone: str = "Europe/Amsterdam"
    max_replies_per_sender_per_hour: int = 5
    deferred_backoff: Backoff = field(
        default_factory=lambda: Backoff(timedelta(seconds=60), timedelta(hours=1))
    )
    # issue #5: beyond these (or for a staff account) a complete request waits for approval
    limits: ResetLimits = field(default_factory=ResetLimits)


@dataclass
class PollStats:
    seen: int = 0
    decided: int = 0
    moved: int = 0
    skipped: int = 0
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def folder_for(outcome: str | None, reply: bool, error: str | None = None) -> str:
    if error is not None and outcome is None:
        return QUARANTINE
    if outcome == Outcome.DEFERRED:
        return STAY
    if outcome == Outcome.REJECTED and not reply:
        return QUARANTINE
    return PROCESSED


def imap_folder(mailbox: Mailbox, folder: str) -> str:
    """The mailbox folder name for PROCESSED or QUARANTINE."""
    return mailbox.processed_folder if folder == PROCESSED else mailbox.quarantine_folder


def _reply_kind_for_rejection(decision: Decision) -> ReplyKind | None:
    if not decision.reply:
        return None
    if ReasonCode.GROUP_MAILBOX in decision.reasons:
        return ReplyKind.REJECTED_GROUP
    if ReasonCode.SENDER_NOT_REGISTERED in decision.reasons:
        return ReplyKind.SENDER_NOT_REGISTERED
    return None


def _names_anything(decision: Decision) -> bool:
    """Whether the sender's new text holds any item, found or explicitly refused."""
    request = decision.request
    return (
        request.account_email is not None
        or request.identity_verified
        or request.reset_instructed
        or any(detail is not MissingDetail.NOT_FOUND
               for detail in request.missing_details.values())
    )


class InboxProcessor:
    """Decides and files the messages of one mailbox. Thread-confined: one poll at a time."""

    def __init__(
        self,
        store: Store,
        context: DecisionContext,
        policy: InboxPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_decision: Callable[[Decision, float | None], None] | None = None,
    ) -> None:
        self.store = store
        self.context = context
        self.policy = policy
        self.clock = clock
        self.on_decision = on_decision
        # staff accounts: municipal domains and our own (the support address's) are always in
        self.limits = policy.limits.with_domains(
            [d for m in context.rules.municipalities.municipalities for d in m.domains]
            + [policy.support_address.rpartition("@")[2]]
        )

    # ------------------------------------------------------------------ the poll

    def process_mailbox(self, mailbox: Mailbox, stop: threading.Event | None = None) -> PollStats:
        """Handle every message in the inbox once; stops early (between messages) on `stop`."""
        stats = PollStats()
        uidvalidity = mailbox.select_inbox()
        with self.store.unit_of_work() as uow:
            previous = uow.get_mailbox_state(mailbox.inbox)
            if previous is not None and previous.uidvalidity != uidvalidity:
                log.warning(
                    "uidvalidity_changed", mailbox=mailbox.inbox, old=previous.uidvalidity,
                    new=uidvalidity,
                )
            uow.set_mailbox_state(
                mailbox.inbox, uidvalidity=uidvalidity,
                last_seen_uid=previous.last_seen_uid
                if previous is not None and previous.uidvalidity == uidvalidity else 0,
                now=self.clock(),
            )
        entries = mailbox.list_uids_with_sizes()
        now = self.clock()
        with self.store.unit_of_work() as uow:
            known = uow.messages_by_uid(mailbox.inbox, uidvalidity, (u for u, _ in entries))
            targets = {uid: self._resume_target(uow, known.get(uid), now) for uid, _ in entries}
            self._record_moves_done_before_a_crash(uow, mailbox, uidvalidity, entries, now)
        highest = 0
        to_fetch: list[tuple[int, int]] = []
        moves = PendingMoves(mailbox, self.store, stats, self.clock)
        for uid, size in entries:
            if stop is not None and stop.is_set():
                break
            stats.seen += 1
            target = targets[uid]
            if target == STAY:
                stats.skipped += 1
            elif target is not None:  # decided before, MOVE not finished (a crash): finish it
                highest = max(highest, uid)
                moves.add(uid, target, known[uid].id)
            elif size > self.policy.max_message_bytes:
                folder, message_pk = self._record_oversize(mailbox, uidvalidity, uid, size, now)
                stats.decided += 1
                highest = max(highest, uid)
                moves.add(uid, folder, message_pk)
            else:
                to_fetch.append((uid, size))
        moves.flush()
        # bodies come in batches (bounded by count and bytes), each decided and committed in
        # turn; their MOVEs go out a batch at a time, always after the decisions' commits
        for uid, raw in mailbox.iter_fetch(to_fetch):
            if stop is not None and stop.is_set():
                break
            folder, message_pk = self.decide_raw(mailbox, uidvalidity, uid, raw, stats)
            if folder != STAY:
                highest = max(highest, uid)
                moves.add(uid, folder, message_pk)
        moves.flush()
        if highest:
            with self.store.unit_of_work() as uow:
                uow.set_mailbox_state(
                    mailbox.inbox, uidvalidity=uidvalidity, last_seen_uid=highest,
                    now=self.clock(),
                )
        return stats

    def decide_raw(
        self, mailbox: Mailbox, uidvalidity: int, uid: int, raw: bytes, stats: PollStats
    ) -> tuple[str, int | None]:
        """Decide one fetched message and commit; returns (folder it goes to, message pk).

        Never raises for the message's sake: a processing error is recorded for quarantine.
        """
        now = self.clock()
        try:
            folder, message_pk = self.handle_raw(
                raw, mailbox=mailbox.inbox, uidvalidity=uidvalidity, uid=uid, now=now,
                stats=stats,
            )
        except Exception as exc:  # one broken message never blocks the others
            stats.errors += 1
            folder, message_pk = self._record_failure(
                raw, exc, mailbox=mailbox.inbox, uidvalidity=uidvalidity, uid=uid, now=now
            )
        failpoint("after_decision_commit")
        return folder, message_pk

    def _resume_target(self, uow: UnitOfWork, known: Message | None, now: datetime) -> str | None:
        """Where an already-recorded UID goes, or None when it must be decided (again)."""
        if known is None:
            return None
        if known.outcome == Outcome.DEFERRED:
            due = (known.decided_at or now) + self.policy.deferred_backoff.delay(known.attempts)
            return None if due <= now else STAY
        if uow.may_decide_again(known):
            return None
        if known.folder_moved_to is not None:
            return None  # moved before, yet back in the inbox (someone moved it back): redo
        reply = bool((known.decision or {}).get("reply"))
        return folder_for(known.outcome, reply, known.error)

    @staticmethod
    def _record_moves_done_before_a_crash(
        uow: UnitOfWork, mailbox: Mailbox, uidvalidity: int, entries: list[tuple[int, int]],
        now: datetime,
    ) -> None:
        """Rows whose MOVE went out but whose "moved" commit did not (a crash in between).

        They are no longer in the inbox, so no poll would finish them: record the folder their
        decision sends them to, so views and `messages reprocess` do not think them still there.
        """
        present = {uid for uid, _ in entries}
        # a crash is noticed at the next start; a week bounds the (indexed) look-back
        for row in uow.messages_pending_move(mailbox.inbox, received_since=now - timedelta(days=7)):
            if row.uidvalidity != uidvalidity or row.uid in present:
                continue
            reply = bool((row.decision or {}).get("reply"))
            target = imap_folder(mailbox, folder_for(row.outcome, reply, row.error))
            uow.mark_message_moved(row, target, now=now)
            log.info("move_recorded_late", message_pk=row.id, uid=row.uid, folder=target)

    # ------------------------------------------------------------- one message

    def handle_raw(
        self,
        raw: bytes,
        *,
        mailbox: str | None = None,
        uidvalidity: int | None = None,
        uid: int | None = None,
        now: datetime | None = None,
        stats: PollStats | None = None,
    ) -> tuple[str, int | None]:
        """Decide one message and commit everything that follows from it. Returns (folder, pk)."""
        now = now or self.clock()
        parsed = parse_message(raw)
        # Decided before the duplicate check, outside any transaction: the decision may wait
        # for DNS and must not hold the database's write lock meanwhile. record_message below
        # is the check (unique key), so a duplicate costs one wasted decision, nothing more.
        started = self.clock()
        decision = decide_parsed(parsed, self.context)
        with self.store.unit_of_work() as uow:
            decision, closed = self._followup_on_closed_request(uow, decision)
            try:
                message = uow.record_message(
                    decision, raw=raw, sha256=parsed.sha256, size=len(raw), mailbox=mailbox,
                    uidvalidity=uidvalidity, uid=uid, received_at=now, now=now,
                )
            except DuplicateMessage as dup:  # a concurrent worker was faster
                return self._duplicate(uow, parsed, dup.existing, uid=uid, now=now)
            if closed is not None:
                self._record_followup(uow, closed, message, now)
                request: Request | None = closed
            else:
                request = self._act_on(uow, decision, message, now, parsed)
            message_pk = message.id
        latency = (self.clock() - started).total_seconds()
        if stats is not None:
            stats.decided += 1
            outcome = decision.outcome.value
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        log.info(
            "decision",
            message_id=decision.message_id,
            message_key=decision.message_key,
            uid=uid,
            outcome=decision.outcome.value,
            reasons=[r.value for r in decision.reasons],
            missing=[m.value for m in decision.missing],
            reply=decision.reply,
            sender=decision.sender.address,
            municipality=decision.sender.municipality,
            dkim=decision.authentication.dkim.value,
            request_id=request.id if request is not None else None,
            request_state=request.state if request is not None else None,
            seconds=round(latency, 4),
        )
        if decision.outcome is Outcome.REJECTED and not decision.reply:
            log.warning(
                "auth_rejected", message_id=decision.message_id,
                reasons=[r.value for r in decision.reasons], sender=decision.sender.address,
            )
        if self.on_decision is not None:  # metrics: outcome, reasons, latency
            self.on_decision(decision, latency)
        return folder_for(decision.outcome.value, decision.reply), message_pk

    def _duplicate(
        self, uow: UnitOfWork, parsed: ParsedMessage, existing: Message, *, uid: int | None,
        now: datetime,
    ) -> tuple[str, int | None]:
        """The same key again: the same bytes are a resumed message; other bytes a replay."""
        if existing.sha256 == parsed.sha256:
            reply = bool((existing.decision or {}).get("reply"))
            return folder_for(existing.outcome, reply, existing.error), existing.id
        uow.audit(
            "duplicate_ignored", message=existing, request_id=existing.request_id, now=now,
            data={"message_key": existing.message_key, "uid": uid, "sha256": parsed.sha256},
        )
        log.info(
            "decision", message_id=parsed.message_id, message_key=parsed.key, uid=uid,
            outcome=Outcome.IGNORED.value, reasons=[ReasonCode.DUPLICATE.value], reply=False,
        )
        return PROCESSED, None

    @staticmethod
    def _followup_on_closed_request(
        uow: UnitOfWork, decision: Decision
    ) -> tuple[Decision, Request | None]:
        """A "thanks" or "any news?" in the thread of the sender's own closed request.

        The core calls it incomplete (it names nothing); answering with "incomplete" and opening
        a new request would confuse the municipality and could start a mail loop. It becomes
        ignored [closed_request_followup] and is recorded on that request. A reply that names
        anything itself (an account, a confirmation, even a refusal) stays a request of its own.
        """
        if decision.outcome is not Outcome.INCOMPLETE or _names_anything(decision):
            return decision, None
        sender = decision.sender.address or ""
        thread = [decision.in_reply_to, *decision.references]
        if uow.find_request_for_thread(sender, thread) is not None:
            return decision, None  # open: merged as usual
        closed = uow.find_request_for_thread(sender, thread, states=None)
        if closed is None:
            return decision, None
        followup = decision.model_copy(update={
            "outcome": Outcome.IGNORED, "reasons": [ReasonCode.CLOSED_REQUEST_FOLLOWUP],
            "missing": [], "reply": False,
            "detail": f"follow-up on request {closed.id} ({closed.state})",
        })
        return followup, closed

    @staticmethod
    def _record_followup(
        uow: UnitOfWork, request: Request, message: Message, now: datetime
    ) -> None:
        """On the request's audit trail (`requests show`), not among its messages: the
        request's own messages stay the source the executor and replies refer to."""
        uow.audit("followup_received", request=request, message=message, now=now,
                  data={"message_key": message.message_key, "request_state": request.state})
        log.info("followup_received", request_id=request.id, request_state=request.state,
                 message_id=message.message_id, sender=message.sender)

    def _act_on(
        self, uow: UnitOfWork, decision: Decision, message: Message, now: datetime,
        parsed: ParsedMessage,
    ) -> Request | None:
        """Everything a decision leads to, inside the decision's transaction."""
        if decision.outcome in (Outcome.COMPLETE, Outcome.INCOMPLETE):
            return self._act_on_request(uow, decision, message, now, parsed)
        kind = _reply_kind_for_rejection(decision)
        if kind is not None:
            queue_reply(
                uow, kind, ReplyData.from_decision(decision),
                support_address=self.policy.support_address, now=now, message=message,
                max_per_hour=self.policy.max_replies_per_sender_per_hour,
                language=message_language(parsed, self.context.rules.extraction),
                templates=self.context.rules.templates,
            )
        return None

    def _act_on_request(
        self, uow: UnitOfWork, decision: Decision, message: Message, now: datetime,
        parsed: ParsedMessage,
    ) -> Request:
        sender = decision.sender.address or ""
        thread = [decision.in_reply_to, *decision.references]
        request = uow.find_request_for_thread(sender, thread)
        if request is not None:
            uow.merge_into_request(request, decision, message, now=now)
        else:
            # replies follow the language of the request that started it (Dutch on doubt)
            language = message_language(parsed, self.context.rules.extraction)
            request = uow.create_request(decision, message, now=now, language=language)
        if request.state == RequestState.INCOMPLETE:
            queue_reply(
                uow, ReplyKind.INCOMPLETE, reply_data_for_request(request, decision),
                support_address=self.policy.support_address, now=now, request=request,
                message=message, max_per_hour=self.policy.max_replies_per_sender_per_hour,
                templates=self.context.rules.templates,
            )
            return request
        # complete: the two-working-day clock starts, then the gate or the executor
        request.deadline_at = deadline(
            request.completed_at or now, self.policy.sla_working_days, self.policy.sla_timezone
        )
        hold = hold_reason(uow, request, self.limits, now)
        if hold is not None:  # never automatic: a person approves, even with the gate off
            request.result_code, request.result_detail = hold.reason.value, hold.detail
            uow.transition(request, RequestState.AWAITING_APPROVAL, now=now,
                           data={"reason": hold.reason.value, "detail": hold.detail, **hold.data})
            log.warning(hold.reason.value, request_id=request.id, detail=hold.detail,
                        municipality=request.municipality, account_email=request.account_email,
                        **hold.data)
        elif self.policy.require_approval:
            uow.transition(request, RequestState.AWAITING_APPROVAL, now=now)
        elif self.policy.executor_kind == "manual":
            uow.transition(request, RequestState.AWAITING_MANUAL_RESET, now=now)
        else:
            uow.create_execution(request, now=now)
        return request

    # ------------------------------------------------------------- the unusual

    def _record_oversize(
        self, mailbox: Mailbox, uidvalidity: int, uid: int, size: int, now: datetime
    ) -> tuple[str, int | None]:
        key = f"oversize:{mailbox.inbox}:{uidvalidity}:{uid}"
        decision = Decision(
            message_id=None, message_key=key, outcome=Outcome.REJECTED,
            reasons=[ReasonCode.OVERSIZE],
            detail=f"{size} bytes > max_message_bytes {self.policy.max_message_bytes}",
        )
        with self.store.unit_of_work() as uow:
            try:
                message = uow.record_message(
                    decision, raw=None, size=size, mailbox=mailbox.inbox,
                    uidvalidity=uidvalidity, uid=uid, received_at=now, now=now,
                )
            except DuplicateMessage as dup:
                return QUARANTINE, dup.existing_id
            pk = message.id
        log.warning("decision", message_key=key, uid=uid, outcome="rejected",
                    reasons=["oversize"], reply=False, size=size)
        if self.on_decision is not None:
            self.on_decision(decision, None)
        return QUARANTINE, pk

    def _record_failure(
        self, raw: bytes, exc: Exception, *, mailbox: str, uidvalidity: int, uid: int,
        now: datetime,
    ) -> tuple[str, int | None]:
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "processing_error", uid=uid, error=error,
            traceback=traceback.format_exc(limit=8),
        )
        parsed = parse_message(raw)
        with self.store.unit_of_work() as uow:
            try:
                message = uow.record_failed_message(
                    message_key=parsed.key, error=error[:2000], raw=raw,
                    message_id=parsed.message_id, sha256=parsed.sha256, size=len(raw),
                    mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, received_at=now, now=now,
                )
            except DuplicateMessage as dup:
                return QUARANTINE, dup.existing_id
            return QUARANTINE, message.id


class PendingMoves:
    """MOVEs of decided messages, sent a batch at a time (one UID MOVE per folder).

    Only messages whose decision is committed are added, so a crash before `flush` leaves
    committed decisions whose MOVE the next poll finishes (`_resume_target`); a crash after the
    MOVE but before the "moved" commit leaves messages out of the inbox whose rows say not
    moved, which the next poll records (`_record_moves_done_before_a_crash`).
    """

    def __init__(
        self, mailbox: Mailbox, store: Store, stats: PollStats, clock: Callable[[], datetime]
    ) -> None:
        self.mailbox = mailbox
        self.store = store
        self.stats = stats
        self.clock = clock
        self.pending: dict[str, list[tuple[int, int | None]]] = {}
        self.count = 0

    def add(self, uid: int, folder: str, message_pk: int | None) -> None:
        if folder == STAY:
            return
        self.pending.setdefault(folder, []).append((uid, message_pk))
        self.count += 1
        if self.count >= self.mailbox.batch_size:
            self.flush()

    def flush(self) -> None:
        for folder, items in self.pending.items():
            target = imap_folder(self.mailbox, folder)
            self.mailbox.move_many([uid for uid, _ in items], target)
            failpoint("after_move")
            self.stats.moved += len(items)
            with self.store.unit_of_work() as uow:
                uow.mark_messages_moved(
                    (pk for _, pk in items if pk is not None), target, now=self.clock()
                )
        self.pending.clear()
        self.count = 0
