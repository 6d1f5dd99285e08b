"""Processing the support mailbox (Mailman's runner, cosmicpython's service).

Bodies are fetched in batches. Each message of a batch is decided by the pure core outside any
transaction (the decision may wait for DNS); then the batch's decisions, new or merged requests,
queued replies and execution intents are recorded in ONE transaction, each message under its
own savepoint, and only after that commit are the messages MOVEd out of the inbox. MOVEs are
sent a batch at a time (`PendingMoves`): one UID MOVE costs about as much for fifty messages as
for one, and so does one commit (a disk flush). A crash anywhere leaves either nothing recorded
(the messages are still in the inbox and are decided again) or committed decisions whose MOVE
is finished (or, if the MOVE went out, recorded) on the next poll. A message that breaks
processing is rolled back to its savepoint, recorded with its error and moved to quarantine;
the others go on.

Folders and the batched MOVEs are in `filing.py`.
"""

from __future__ import annotations

import hashlib
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from reset_mailbot.adapters.db.messages import DuplicateMessage
from reset_mailbot.adapters.db.schema import Message, Request, utcnow
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork
from reset_mailbot.adapters.imap import Mailbox
from reset_mailbot.domain.context import Facts, Standing, decide_in_context
from reset_mailbot.domain.decision import DecisionContext, decide_parsed
from reset_mailbot.domain.message import ParsedMessage, parse_message
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Outcome, ReasonCode
from reset_mailbot.logs import decision_fields, get_logger
from reset_mailbot.service.acting import RequestActor
from reset_mailbot.service.failpoints import failpoint
from reset_mailbot.service.filing import (
    PROCESSED,
    QUARANTINE,
    STAY,
    PendingMoves,
    PollStats,
    folder_for,
    imap_folder,
)
from reset_mailbot.service.inbox_policy import InboxPolicy

log = get_logger("reset_mailbot.inbox")

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
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.context = context
        self.policy = policy
        self.clock = clock
        self.on_decision = on_decision
        self.on_commit = on_commit
        self.actor = RequestActor(context, policy)

    # ------------------------------------------------------------------ the poll

    def process_mailbox(self, mailbox: Mailbox, stop: threading.Event | None = None) -> PollStats:
        """Handle every message in the inbox once; stops early (between messages) on `stop`."""
        stats = PollStats()
        uidvalidity = mailbox.select_inbox()
        with self.store.unit_of_work() as uow:
            previous = uow.mailboxes.get(mailbox.inbox)
            if previous is not None and previous.uidvalidity != uidvalidity:
                log.warning(
                    "uidvalidity_changed", mailbox=mailbox.inbox, old=previous.uidvalidity,
                    new=uidvalidity,
                )
            uow.mailboxes.set(
                mailbox.inbox, uidvalidity=uidvalidity,
                last_seen_uid=previous.last_seen_uid
                if previous is not None and previous.uidvalidity == uidvalidity else 0,
                now=self.clock(),
            )
        entries = mailbox.list_uids_with_sizes()
        now = self.clock()
        with self.store.unit_of_work() as uow:
            known = uow.messages.by_uids(mailbox.inbox, uidvalidity, (u for u, _ in entries))
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
        # bodies come in batches (bounded by count and bytes); each batch is decided outside
        # any transaction, committed in one, and its MOVEs go out after that commit
        for batch in mailbox.fetch_batches(to_fetch):
            decided: list[DecidedMessage] = []
            for uid, raw in batch:
                if stop is not None and stop.is_set():
                    break
                decided.append(self.decide(raw, uid=uid))
            filed = self.commit(decided, mailbox=mailbox.inbox, uidvalidity=uidvalidity,
                                stats=stats)
            failpoint("after_decision_commit")
            if self.on_commit is not None and decided:
                self.on_commit()  # the daemon wakes its workers: replies and resets due now
            for item, (folder, message_pk) in zip(decided, filed, strict=True):
                if folder != STAY:
                    highest = max(highest, item.uid or 0)
                    moves.add(item.uid or 0, folder, message_pk)
            if stop is not None and stop.is_set():
                break
        moves.flush()
        if highest:
            with self.store.unit_of_work() as uow:
                uow.mailboxes.set(
                    mailbox.inbox, uidvalidity=uidvalidity, last_seen_uid=highest,
                    now=self.clock(),
                )
        return stats

    def _resume_target(self, uow: UnitOfWork, known: Message | None, now: datetime) -> str | None:
        """Where an already-recorded UID goes, or None when it must be decided (again)."""
        if known is None:
            return None
        if known.outcome == Outcome.DEFERRED:
            due = (known.decided_at or now) + self.policy.deferred_backoff.delay(known.attempts)
            return None if due <= now else STAY
        if uow.messages.may_decide_again(known):
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
        for row in uow.messages.pending_move(mailbox.inbox, received_since=now - timedelta(days=7)):
            if row.uidvalidity != uidvalidity or row.uid in present:
                continue
            reply = bool((row.decision or {}).get("reply"))
            target = imap_folder(mailbox, folder_for(row.outcome, reply, row.error))
            uow.messages.mark_moved(row, target, now=now)
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
        decided = self.decide(raw, uid=uid, now=now)
        return self.commit([decided], mailbox=mailbox, uidvalidity=uidvalidity, stats=stats)[0]

    def decide(self, raw: bytes, *, uid: int | None = None,
               now: datetime | None = None) -> DecidedMessage:
        """Parse and decide with the pure core, outside any transaction.

        The decision may wait for DNS and must not hold the database's write lock meanwhile.
        The duplicate check comes later (uow.messages.record's unique key), so a duplicate costs one
        wasted decision, nothing more. An exception is kept on the result for `commit`.
        """
        item = DecidedMessage(raw=raw, uid=uid, received_at=now or self.clock(),
                              started=self.clock())
        try:
            item.parsed = parse_message(raw, self.context.limits)
            # judged at `now` (the daemon clock; tests inject it): DKIM x=, request age
            item.decision = decide_parsed(item.parsed, self.context, item.received_at.timestamp())
        except Exception as exc:  # recorded and quarantined by commit, never raised
            item.fail(exc)
        return item

    def commit(
        self, items: list[DecidedMessage], *, mailbox: str | None, uidvalidity: int | None,
        stats: PollStats | None = None,
    ) -> list[tuple[str, int | None]]:
        """Record decided messages and all that follows from them in one transaction.

        Returns (folder, message pk) per item. Each message gets a savepoint, so one that
        breaks processing is rolled back alone and recorded with its error (for quarantine)
        while the others commit. One commit for a fetched batch instead of one per message:
        with `synchronous=FULL` each commit is a disk flush. Logs and metrics follow the
        commit, so a log line never reports a decision that was rolled back. A failing commit
        (the database itself: gone, full) raises: nothing of the batch is recorded, its
        messages stay in the inbox, and the next poll decides them again.
        """
        if not items:
            return []
        with self.store.unit_of_work() as uow:
            recorded = [self._record(uow, item, mailbox, uidvalidity) for item in items]
        for result in recorded:
            result.announce(stats)
        return [(result.folder, result.message_pk) for result in recorded]

    def _record(
        self, uow: UnitOfWork, item: DecidedMessage, mailbox: str | None,
        uidvalidity: int | None,
    ) -> _Recorded:
        if item.decision is not None and item.parsed is not None:
            try:
                with uow.savepoint():
                    return self._record_decision(uow, item, item.parsed, item.decision,
                                                 mailbox, uidvalidity)
            except Exception as exc:  # one broken message never blocks the others
                item.fail(exc)
        return self._record_failure(uow, item, mailbox, uidvalidity)

    def _record_decision(
        self, uow: UnitOfWork, item: DecidedMessage, parsed: ParsedMessage, decision: Decision,
        mailbox: str | None, uidvalidity: int | None,
    ) -> _Recorded:
        now = item.received_at
        placed = decide_in_context(decision, uow.facts_for(decision), parsed.sha256)
        if placed.earlier is not None:  # resumed or a replay: nothing new to record
            existing = uow.messages.by_key(placed.earlier.key)
            assert existing is not None
            return self._duplicate(uow, parsed, existing, placed.standing, uid=item.uid, now=now)
        decision = placed.decision
        closed = (uow.requests.get(placed.closed_request.id)
                  if placed.closed_request is not None else None)
        try:
            message = uow.messages.record(
                decision, raw=item.raw, sha256=parsed.sha256, size=len(item.raw),
                mailbox=mailbox, uidvalidity=uidvalidity, uid=item.uid, received_at=now,
                now=now,
            )
        except DuplicateMessage as dup:  # a concurrent worker recorded it first
            raced = decide_in_context(
                decision, Facts(same_key=uow.earlier_message(dup.existing)), parsed.sha256)
            return self._duplicate(uow, parsed, dup.existing, raced.standing, uid=item.uid,
                                   now=now)
        if closed is not None:
            self._record_followup(uow, closed, message, now)
            request: Request | None = closed
        else:
            request = self.act_on(uow, decision, message, now, parsed)
        request_id = request.id if request is not None else None
        request_state = request.state if request is not None else None

        def announce(stats: PollStats | None) -> None:
            latency = (self.clock() - item.started).total_seconds()
            if stats is not None:
                stats.decided += 1
                outcome = decision.outcome.value
                stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
            log.info(
                "decision", **decision_fields(decision), uid=item.uid, request_id=request_id,
                request_state=request_state, seconds=round(latency, 4),
            )
            if decision.outcome is Outcome.REJECTED and not decision.reply:
                log.warning(
                    "auth_rejected", message_id=decision.message_id,
                    reasons=[r.value for r in decision.reasons], sender=decision.sender.address,
                )
            if self.on_decision is not None:  # metrics: outcome, reasons, latency
                self.on_decision(decision, latency)

        return _Recorded(folder_for(decision.outcome.value, decision.reply), message.id,
                         announce)

    def _duplicate(
        self, uow: UnitOfWork, parsed: ParsedMessage, existing: Message, standing: Standing,
        *, uid: int | None, now: datetime,
    ) -> _Recorded:
        """Decided before (domain/context.py): the same bytes are a resumed message, filed as
        it was; other bytes under a decided key or DKIM signature are a replay."""
        if standing is Standing.RESUMED:
            reply = bool((existing.decision or {}).get("reply"))
            return _Recorded(folder_for(existing.outcome, reply, existing.error), existing.id)
        uow.audit_log.append(
            "duplicate_ignored", message=existing, request_id=existing.request_id, now=now,
            data={"message_key": existing.message_key, "uid": uid, "sha256": parsed.sha256},
        )

        def announce(_stats: PollStats | None) -> None:
            log.info(
                "decision", message_id=parsed.message_id, message_key=parsed.key, uid=uid,
                outcome=Outcome.IGNORED.value, reasons=[ReasonCode.DUPLICATE.value],
                reply=False,
            )
            if self.on_decision is not None:  # counted like every logged decision
                self.on_decision(Decision(
                    message_id=parsed.message_id, message_key=parsed.key,
                    outcome=Outcome.IGNORED, reasons=[ReasonCode.DUPLICATE],
                    subject=parsed.subject), None)

        return _Recorded(PROCESSED, None, announce)

    @staticmethod
    def _record_followup(
        uow: UnitOfWork, request: Request, message: Message, now: datetime
    ) -> None:
        """On the request's audit trail (`requests show`), not among its messages: the
        request's own messages stay the source the executor and replies refer to."""
        uow.audit_log.append("followup_received", request=request, message=message, now=now,
                  data={"message_key": message.message_key, "request_state": request.state})
        log.info("followup_received", request_id=request.id, request_state=request.state,
                 message_id=message.message_id, sender=message.sender)

    def act_on(
        self, uow: UnitOfWork, decision: Decision, message: Message, now: datetime,
        parsed: ParsedMessage,
    ) -> Request | None:
        """See `RequestActor.act_on`; public because `reprocess` takes the very same path."""
        return self.actor.act_on(uow, decision, message, now, parsed)

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
                message = uow.messages.record(
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
        self, uow: UnitOfWork, item: DecidedMessage, mailbox: str | None,
        uidvalidity: int | None,
    ) -> _Recorded:
        """A message that broke processing: recorded with its error, bound for quarantine."""
        error = item.failure or "unknown error"

        def announce(stats: PollStats | None) -> None:
            if stats is not None:
                stats.errors += 1
            log.error("processing_error", uid=item.uid, error=error, traceback=item.trace)

        parsed = item.parsed
        try:
            with uow.savepoint():
                message = uow.messages.record_failed(
                    message_key=parsed.key if parsed is not None else item.fallback_key,
                    error=error[:2000], raw=item.raw,
                    message_id=parsed.message_id if parsed is not None else None,
                    sha256=item.sha256, size=len(item.raw), mailbox=mailbox,
                    uidvalidity=uidvalidity, uid=item.uid, received_at=item.received_at,
                    now=item.received_at,
                )
        except DuplicateMessage as dup:
            return _Recorded(QUARANTINE, dup.existing_id, announce)
        return _Recorded(QUARANTINE, message.id, announce)


@dataclass
class DecidedMessage:
    """A fetched message decided outside any transaction, waiting for its batch's commit."""

    raw: bytes
    uid: int | None
    received_at: datetime
    started: datetime
    parsed: ParsedMessage | None = None
    decision: Decision | None = None
    failure: str | None = None  # "Type: text" of what broke processing
    trace: str | None = None

    def fail(self, exc: Exception) -> None:
        self.failure = f"{type(exc).__name__}: {exc}"
        self.trace = traceback.format_exc(limit=8)

    @property
    def sha256(self) -> str:
        return self.parsed.sha256 if self.parsed is not None else \
            hashlib.sha256(self.raw).hexdigest()

    @property
    def fallback_key(self) -> str:
        """The key of a message the parser could not read (as `ParsedMessage.key` would be)."""
        return f"sha256:{self.sha256}"


@dataclass
class _Recorded:
    """What one message's part of a batch transaction led to; announced after the commit."""

    folder: str
    message_pk: int | None
    on_commit: Callable[[PollStats | None], None] | None = None

    def announce(self, stats: PollStats | None) -> None:
        if self.on_commit is not None:
            self.on_commit(stats)
