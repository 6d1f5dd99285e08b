"""The repository the service layer talks to: one unit of work per message, plus claim queues.

How the daemon keeps "at most once, never lost" (issue #4, item 4) on the storage side:

* **One transaction per message.** `Store.unit_of_work()` yields a `UnitOfWork`; the decided
  message, the new or merged request, the queued replies and the execution intent are written in
  it and committed together when the block ends without an exception (any exception rolls all of
  it back). Only after that commit does the daemon MOVE the message or talk to SMTP/executors.
* **Decided once.** `messages.message_key` is unique. `record_message` raises `DuplicateMessage`
  for a key already decided, also when a concurrent worker inserted it first (caught inside a
  savepoint so the surrounding transaction stays usable). A `deferred` message, or one that
  failed with a processing error, may be decided again: its row is updated.
* **Claims.** Due outbox rows and executions are claimed by `Store.claim_due_outbox` /
  `Store.claim_due_executions`, each in its own committed transaction that sets the row to
  `sending` / `running` and counts the attempt. PostgreSQL uses `SELECT ... FOR UPDATE SKIP
  LOCKED`, so two workers never get the same row; SQLite takes the write lock up front
  (`BEGIN IMMEDIATE`, see `engine.py`), which serialises claimers. A row left in `sending` or
  `running` longer than the lease (a worker died) becomes claimable again.
* **The SMTP trade-off.** SMTP has no idempotency key. If a worker dies after the server
  accepted DATA but before `mark_outbox_sent` committed, the lease expires and the reply is sent
  again. We choose that rare duplicate over a reply that is silently never sent; it is the same
  bytes with the same Message-ID (stored before the first attempt), so it is recognisably the
  same message, and the window is one SMTP transaction plus one small commit. Reclaims are
  written to the audit log (`reply_reclaimed`). Executions have no such window: the executor
  takes the stored idempotency key, so a repeated call is the same reset.
* **Audit log is append-only.** The repository has no update or delete for it, and a
  `before_flush` guard refuses any ORM change to an existing `AuditEntry`. (Retention's
  anonymisation, issue #6, will be the one deliberate exception and must use an explicit Core
  UPDATE with its own audit event.)
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, event, func, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import (
    Session,
    contains_eager,
    joinedload,
    selectinload,
    sessionmaker,
    undefer,
)

from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.schema import (
    AuditEntry,
    Execution,
    MailboxState,
    Message,
    OutboxItem,
    Request,
    SignatureSeen,
    ThreadId,
    utcnow,
)
from reset_mailbot.adapters.executors.base import ExecutionJob, ExecutionResult
from reset_mailbot.domain.backoff import Backoff
from reset_mailbot.domain.context import EarlierMessage, Facts, ThreadRequest
from reset_mailbot.domain.lifecycle import after_execution
from reset_mailbot.domain.models import Decision, ResetRequest
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.domain.request_state import (
    FINAL_STATES,
    INITIAL_STATES,
    MERGEABLE_STATES,
    InvalidTransition,
    RequestState,
    merge_items,
    validate_transition,
)

SYSTEM = "system"


class OutboxState:
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class ExecutionState:
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    PENDING_HUMAN = "pending_human"  # handed to a person (manual executor)


class DuplicateMessage(Exception):
    """The message key was already decided: the policy's [duplicate].

    `existing` is the stored row, usable while the unit of work is open (catch the exception
    inside the block to audit the duplicate or finish a MOVE); the plain fields survive the
    rollback of a block the exception leaves.

    Not every duplicate is a replay: when `existing` has the same mailbox/UIDVALIDITY/UID and
    `folder_moved_to` is None, the daemon died between the commit and the IMAP MOVE, and the
    right action is only to finish the move (see `UnitOfWork.messages_pending_move`).
    """

    def __init__(self, existing: Message) -> None:
        super().__init__(f"message already decided: {existing.message_key}")
        self.existing = existing
        self.message_key = existing.message_key
        self.existing_id = existing.id
        self.outcome = existing.outcome
        self.folder_moved_to = existing.folder_moved_to


class AuditLogIsAppendOnly(RuntimeError):
    """Something tried to change or delete an audit row through the ORM."""


# replies and executions: 30 s, 1 min, 2 min, ... 1 h
RETRY_BACKOFF = Backoff(timedelta(seconds=30), timedelta(hours=1))


@dataclass(frozen=True)
class OutboxClaim:
    """A reply claimed for sending: everything SMTP needs, detached from any session."""

    id: int
    request_id: str | None
    message_id: int | None
    kind: str
    to_address: str
    reply_message_id: str
    rfc822: bytes
    attempts: int
    reclaimed: bool


@dataclass(frozen=True)
class ExecutionClaim:
    """An execution claimed for running, with the job the executor is given."""

    id: int
    attempts: int
    reclaimed: bool
    work: ExecutionJob

    def job(self) -> ExecutionJob:
        return self.work

    @property
    def request_id(self) -> str:
        return self.work.request_id

    @property
    def idempotency_key(self) -> str:
        return self.work.idempotency_key

    @property
    def account_email(self) -> str:
        return self.work.account_email

    @property
    def source_message_id(self) -> str | None:
        return self.work.message_id

    @property
    def approved_by(self) -> str | None:
        return self.work.approved_by


def sender_name_of(message: Message | None) -> str | None:
    """The display name the decision recorded for `message`'s sender, if any."""
    sender = ((message.decision or {}) if message is not None else {}).get("sender") or {}
    name = sender.get("name") if isinstance(sender, dict) else None
    return name if isinstance(name, str) and name else None


def execution_job(request: Request, idempotency_key: str) -> ExecutionJob:
    """What an executor is given for `request`: for a claimed execution and a dry run alike.

    The requester's name and the source message are the latest message's (all of a request's
    messages come from its one sender).
    """
    latest = request.messages[-1] if request.messages else None
    return ExecutionJob(
        request_id=request.id,
        idempotency_key=idempotency_key,
        account_email=request.account_email or "",
        municipality=request.municipality or "",
        requested_by=request.sender,
        case_reference=request.case_reference,
        message_id=latest.message_id if latest else None,
        approved_by=request.approved_by,
        received_at=latest.received_at if latest else None,
        requested_by_name=sender_name_of(latest),
    )


def new_request_id() -> str:
    """Short and safe to read aloud on the phone: "R-" + 8 base32 characters (40 random bits)."""
    return "R-" + base64.b32encode(secrets.token_bytes(5)).decode("ascii")


def default_idempotency_key(request_id: str) -> str:
    """One reset per request: the key is derived from the request id alone."""
    return f"reset-mailbot:{request_id}"


def request_items(request: Request) -> ResetRequest:
    """The items a stored request holds, as the domain's ResetRequest (for merging)."""
    return ResetRequest.model_validate(
        {
            "account_email": request.account_email,
            "identity_verified": request.identity_verified,
            "reset_instructed": request.reset_instructed,
            "case_reference": request.case_reference,
            "evidence": request.evidence or [],
            "missing_details": request.missing_details or {},
        }
    )


def _apply_items(request: Request, items: ResetRequest) -> None:
    dumped = items.model_dump(mode="json")
    request.account_email = items.account_email
    request.identity_verified = items.identity_verified
    request.reset_instructed = items.reset_instructed
    request.case_reference = items.case_reference
    request.evidence = dumped["evidence"]
    request.missing = [item.value for item in items.missing]
    request.missing_details = dumped["missing_details"]


def _items_snapshot(request: Request) -> dict[str, Any]:
    return {
        "account_email": request.account_email,
        "identity_verified": request.identity_verified,
        "reset_instructed": request.reset_instructed,
        "case_reference": request.case_reference,
    }


class UnitOfWork:
    """Repository bound to one session and one transaction (see `Store.unit_of_work`)."""

    def __init__(self, store: Store, session: Session) -> None:
        self._store = store
        self.session = session

    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else self._store.clock()

    def commit(self) -> None:
        """Commit now; the block goes on in a new transaction. Usually the block's end commits."""
        self.session.commit()

    def flush(self) -> None:
        self.session.flush()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an exception inside undoes the block's changes only.

        Earlier work of the unit of work is flushed first and kept; the block's own changes
        are flushed when it ends, so a constraint it violates fails inside it.
        """
        with self.session.begin_nested():
            yield

    # ----------------------------------------------------------------- messages

    def facts_for(self, decision: Decision) -> Facts:
        """What the store knows about a decided message (domain/context.py reads it): an
        earlier message under its key or one of its DKIM signatures, and - for an incomplete
        message, the only one that can be a follow-up - the sender's request in its thread."""
        same_key = self.get_message_by_key(decision.message_key)
        same_signature = self._message_with_signature(decision.replay_keys)
        open_request = closed_request = None
        if decision.outcome is Outcome.INCOMPLETE:
            sender = decision.sender.address or ""
            thread = [decision.in_reply_to, *decision.references]
            tags = decision.subject_request_ids
            found = self.find_request_for_thread(sender, thread, request_ids=tags)
            if found is not None:
                open_request = ThreadRequest(found.id, found.state)
            else:
                found = self.find_request_for_thread(sender, thread, request_ids=tags,
                                                     states=None)
                if found is not None:
                    closed_request = ThreadRequest(found.id, found.state)
        return Facts(
            same_key=self.earlier_message(same_key),
            same_signature=self.earlier_message(same_signature),
            open_request=open_request, closed_request=closed_request,
        )

    def earlier_message(self, message: Message | None) -> EarlierMessage | None:
        """A stored message as the pure context rules see it."""
        if message is None:
            return None
        return EarlierMessage(
            key=message.message_key, sha256=message.sha256, outcome=message.outcome,
            reply=bool((message.decision or {}).get("reply")),
            decidable_again=self.may_decide_again(message),
        )

    def lock_request(self, request_id: str) -> Request | None:
        """The request row, locked for this transaction (PostgreSQL: FOR UPDATE; SQLite: the
        write lock BEGIN IMMEDIATE took), so two people acting at once cannot both succeed;
        read afresh from the database."""
        return self.session.get(Request, request_id.strip(), with_for_update=True,
                                populate_existing=True)

    def lock_message(self, message_pk: int) -> Message | None:
        """The message row, locked and read afresh (see `lock_request`)."""
        return self.session.get(Message, message_pk, with_for_update=True,
                                populate_existing=True)

    def claim_sla_marker(self, request_id: str, *, breach: bool, now: datetime) -> bool:
        """Set the request's SLA warning (or breach) marker if nobody did and it is still open;
        True when this transaction set it (a conditional UPDATE: two daemons warn once)."""
        column = Request.sla_breached_at if breach else Request.sla_warned_at
        result = self.session.execute(
            update(Request)
            .where(Request.id == request_id, column.is_(None),
                   Request.state.not_in([s.value for s in FINAL_STATES]))
            # keep updated_at: thread matching orders by it, and nothing about the request changed
            .values({column: now, Request.updated_at: Request.updated_at})
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def get_message_by_key(self, message_key: str) -> Message | None:
        return self.session.scalars(
            select(Message).where(Message.message_key == message_key)
        ).one_or_none()

    def get_message(self, message_id: int) -> Message | None:
        return self.session.get(Message, message_id)

    def get_message_by_uid(self, mailbox: str, uidvalidity: int, uid: int) -> Message | None:
        return self.session.scalars(
            select(Message).where(
                Message.mailbox == mailbox, Message.uidvalidity == uidvalidity, Message.uid == uid
            )
        ).one_or_none()

    def messages_by_uid(
        self, mailbox: str, uidvalidity: int, uids: Iterable[int]
    ) -> dict[int, Message]:
        """The recorded messages among `uids` of one mailbox, in few queries (a poll's view)."""
        wanted = sorted(set(uids))
        found: dict[int, Message] = {}
        for start in range(0, len(wanted), 500):  # keep IN lists well under backend limits
            chunk = wanted[start : start + 500]
            query = select(Message).where(
                Message.mailbox == mailbox,
                Message.uidvalidity == uidvalidity,
                Message.uid.in_(chunk),
            )
            for message in self.session.scalars(query):
                if message.uid is not None:
                    found[message.uid] = message
        return found

    @staticmethod
    def may_decide_again(message: Message) -> bool:
        """A deferred message, or one that broke processing, gets another decision."""
        return message.outcome == Outcome.DEFERRED or (
            message.outcome is None and message.error is not None
        )

    def record_message(
        self,
        decision: Decision,
        *,
        raw: bytes | None,
        sha256: str | None = None,
        size: int | None = None,
        mailbox: str | None = None,
        uidvalidity: int | None = None,
        uid: int | None = None,
        received_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Message:
        """Store a decided message, or raise DuplicateMessage if its key was decided before.

        A row for the same key that may be decided again (`may_decide_again`) is updated in
        place; its `attempts` counts the decisions.
        """
        now = self._now(now)
        replayed = self._message_with_signature(decision.replay_keys)
        if replayed is not None and replayed.message_key != decision.message_key:
            raise DuplicateMessage(replayed)
        message, is_new = self._row_for_attempt(
            decision.message_key, decision.message_id, raw=raw, sha256=sha256, size=size,
            mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, received_at=received_at, now=now,
        )
        message.sender = decision.sender.address
        message.subject = decision.subject
        message.decided_at = now
        message.outcome = decision.outcome.value
        message.reasons = [reason.value for reason in decision.reasons]
        message.decision = decision.model_dump(mode="json")
        message.error = None
        with self.session.begin_nested():  # a replay found now undoes the insert with it
            self._insert_unique(message, is_new=is_new)
            self._record_signatures(message, decision.replay_keys)
        self.audit(
            "message_decided",
            message=message,
            now=now,
            data={
                "message_key": message.message_key,
                "outcome": message.outcome,
                "reasons": message.reasons,
                "attempt": message.attempts,
            },
        )
        return message

    def record_failed_message(
        self,
        *,
        message_key: str,
        error: str,
        raw: bytes | None,
        message_id: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        mailbox: str | None = None,
        uidvalidity: int | None = None,
        uid: int | None = None,
        received_at: datetime | None = None,
        reasons: Sequence[str] = ("processing_error",),
        now: datetime | None = None,
    ) -> Message:
        """Store a message that broke processing (to be quarantined), with its error.

        Its outcome stays empty, so `messages reprocess` can decide it later. Raises
        DuplicateMessage when the key already carries a decision.
        """
        now = self._now(now)
        message, is_new = self._row_for_attempt(
            message_key, message_id, raw=raw, sha256=sha256, size=size, mailbox=mailbox,
            uidvalidity=uidvalidity, uid=uid, received_at=received_at, now=now,
        )
        message.outcome = None
        message.reasons = list(reasons)
        message.error = error
        self._insert_unique(message, is_new=is_new)
        self.audit(
            "message_failed",
            message=message,
            now=now,
            data={"message_key": message_key, "error": error, "reasons": list(reasons)},
        )
        return message

    def _row_for_attempt(
        self,
        message_key: str,
        message_id: str | None,
        *,
        raw: bytes | None,
        sha256: str | None,
        size: int | None,
        mailbox: str | None,
        uidvalidity: int | None,
        uid: int | None,
        received_at: datetime | None,
        now: datetime,
    ) -> tuple[Message, bool]:
        """The row one more decision attempt is written to (new, or a re-decidable one).

        Raises DuplicateMessage when the key already carries a final decision.
        """
        existing = self.get_message_by_key(message_key)
        if existing is None and mailbox is not None and uidvalidity is not None and uid is not None:
            # The same IMAP message decided again (it was deferred or broke processing) keeps
            # its row even when its key changes: a deferred decision has not verified DKIM
            # yet, so it is keyed by its bytes; the verified one by its signed Message-ID.
            same = self.get_message_by_uid(mailbox, uidvalidity, uid)
            if same is not None and self.may_decide_again(same):
                same.message_key = message_key
                existing = same
        if existing is not None and not self.may_decide_again(existing):
            raise DuplicateMessage(existing)
        message = existing or Message(message_key=message_key, attempts=0)
        message.message_id = message_id
        message.mailbox = mailbox
        message.uidvalidity = uidvalidity
        message.uid = uid
        message.size = size if size is not None else (len(raw) if raw is not None else None)
        message.sha256 = sha256
        message.raw = raw
        message.received_at = received_at or message.received_at or now
        message.attempts += 1
        return message, existing is None

    def _message_with_signature(self, keys: Sequence[str]) -> Message | None:
        """The message decided earlier under one of these DKIM signatures, if any."""
        if not keys:
            return None
        return self.session.scalars(
            select(Message).join(SignatureSeen, SignatureSeen.message_id == Message.id)
            .where(SignatureSeen.signature.in_(sorted(set(keys)))).limit(1)
        ).one_or_none()

    def _record_signatures(self, message: Message, keys: Sequence[str]) -> None:
        """Remember the message's signatures; a concurrent worker that recorded one of them
        first makes this message its replay (DuplicateMessage, the savepoint undoes it)."""
        fresh = sorted(set(keys))
        if not fresh:
            return
        known = {row.signature: row.message_id for row in self.session.scalars(
            select(SignatureSeen).where(SignatureSeen.signature.in_(fresh))
        )}
        other = next((mid for mid in known.values() if mid != message.id), None)
        if other is not None:  # recorded since record_message looked
            raise DuplicateMessage(self.session.get_one(Message, other))
        try:
            with self.session.begin_nested():
                for key in fresh:
                    if key not in known:
                        self.session.add(SignatureSeen(signature=key, message_id=message.id))
        except IntegrityError:
            replayed = self._message_with_signature(fresh)
            if replayed is None:
                raise
            raise DuplicateMessage(replayed) from None

    def _insert_unique(self, message: Message, *, is_new: bool) -> None:
        if not is_new:
            self.session.flush()
            return
        # Flush the rest first, so that a failed savepoint rolls back only this insert.
        self.session.flush()
        try:
            with self.session.begin_nested():
                self.session.add(message)
        except IntegrityError:
            # A concurrent worker committed the same key (or IMAP UID) first.
            existing = self.get_message_by_key(message.message_key)
            if existing is None:
                raise
            raise DuplicateMessage(existing) from None

    def mark_message_moved(
        self, message: Message | int, folder: str, *, now: datetime | None = None
    ) -> Message:
        """Record that the IMAP MOVE to `folder` succeeded (done after the decision commit)."""
        row = self._message(message)
        row.folder_moved_to = folder
        row.moved_at = self._now(now)
        return row

    def mark_messages_moved(
        self, messages: Iterable[int], folder: str, *, now: datetime | None = None
    ) -> int:
        """`mark_message_moved` for a whole batch in one statement; returns the rows updated."""
        ids = sorted(set(messages))
        if not ids:
            return 0
        moved_at = self._now(now)
        updated = 0
        for start in range(0, len(ids), 500):  # bounded IN lists for every backend
            result = self.session.execute(
                update(Message)
                .where(Message.id.in_(ids[start : start + 500]))
                .values(folder_moved_to=folder, moved_at=moved_at)
                .execution_options(synchronize_session="fetch")
            )
            updated += result.rowcount or 0  # type: ignore[attr-defined]
        return updated

    def messages_pending_move(
        self, mailbox: str | None = None, *, received_since: datetime | None = None
    ) -> list[Message]:
        """Decided (or failed) messages still in the inbox: a crash came between commit and MOVE.

        `received_since` bounds the search by the indexed receive time, for callers that look
        every poll and only care about recent crashes.
        """
        query = select(Message).where(
            Message.folder_moved_to.is_(None),
            Message.uid.is_not(None),
            or_(Message.outcome.is_(None), Message.outcome != Outcome.DEFERRED.value),
        )
        if mailbox is not None:
            query = query.where(Message.mailbox == mailbox)
        if received_since is not None:
            query = query.where(Message.received_at >= received_since)
        return list(self.session.scalars(query.order_by(Message.id)))

    def list_messages(
        self,
        *,
        outcome: str | None = None,
        errors_only: bool = False,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        query = select(Message)
        if outcome is not None:
            query = query.where(Message.outcome == outcome)
        if errors_only:
            query = query.where(Message.error.is_not(None))
        if since is not None:
            query = query.where(Message.received_at >= since)
        query = query.order_by(Message.received_at.desc(), Message.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return list(self.session.scalars(query))

    def _message(self, message: Message | int) -> Message:
        if isinstance(message, Message):
            return message
        row = self.session.get(Message, message)
        if row is None:
            raise LookupError(f"no message {message}")
        return row

    # ----------------------------------------------------------------- requests

    def get_request(self, request_id: str, *, full: bool = False) -> Request | None:
        """A request; with `full`, its messages, audit, outbox and executions loaded too."""
        if not full:
            return self.session.get(Request, request_id)
        query = (
            select(Request)
            .where(Request.id == request_id)
            .options(
                selectinload(Request.messages),
                selectinload(Request.audit),
                selectinload(Request.outbox),
                selectinload(Request.executions),
                selectinload(Request.thread_ids),
            )
        )
        return self.session.scalars(query).one_or_none()

    def list_requests(
        self,
        *,
        state: str | Iterable[str] | None = None,
        municipality: str | None = None,
        since: datetime | None = None,
        overdue_at: datetime | None = None,
        limit: int | None = None,
    ) -> list[Request]:
        """Requests newest first. `overdue_at`: open requests whose deadline is before it."""
        query = select(Request)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            query = query.where(Request.state.in_(states))
        if municipality is not None:
            query = query.where(Request.municipality == municipality)
        if since is not None:
            query = query.where(Request.created_at >= since)
        if overdue_at is not None:
            query = query.where(
                Request.deadline_at.is_not(None),
                Request.deadline_at < overdue_at,
                Request.state.not_in([s.value for s in FINAL_STATES]),
            )
        query = query.order_by(Request.created_at.desc(), Request.id)
        if limit is not None:
            query = query.limit(limit)
        return list(self.session.scalars(query))

    def find_request_for_thread(
        self,
        sender: str,
        message_ids: Iterable[str | None],
        *,
        request_ids: Iterable[str] = (),
        states: Iterable[str] | None = MERGEABLE_STATES,
    ) -> Request | None:
        """The request a reply belongs to (policy, "Threads").

        `message_ids` are the reply's In-Reply-To and References entries; any of them may be one
        of the request's own messages or one of our replies. Only a request from the same
        sender (case-insensitive) counts: a colleague answering in the thread starts their own.
        By default only requests still open for merging (`incomplete`) are returned; pass
        `states=None` for any state. The most recently updated match wins.
        `request_ids` are request tags from the reply's signed Subject ("[R-...]", which our
        replies carry): they find the request as its message ids do.
        """
        ids = sorted({m.strip() for m in message_ids if m and m.strip()})
        tags = sorted(set(request_ids))
        if not ids and not tags:
            return None
        in_thread = select(ThreadId.request_id).where(ThreadId.message_id.in_(ids))
        query = select(Request).where(
            or_(Request.id.in_(in_thread), Request.id.in_(tags)),
            Request.sender == sender.strip().lower(),
        )
        if states is not None:
            query = query.where(Request.state.in_([str(s) for s in states]))
        query = query.order_by(Request.updated_at.desc(), Request.id.desc()).limit(1)
        return self.session.scalars(query).first()

    def create_request(
        self,
        decision: Decision,
        message: Message,
        *,
        municipality: str | None = None,
        state: RequestState | str | None = None,
        language: str | None = None,
        deadline_at: datetime | None = None,
        actor: str = SYSTEM,
        now: datetime | None = None,
    ) -> Request:
        """A new request from a decided message; state from its items unless given."""
        now = self._now(now)
        items = decision.request
        if state is None:
            state = RequestState.INCOMPLETE if items.missing else RequestState.COMPLETE
        state = RequestState(state)
        if state not in INITIAL_STATES:
            raise InvalidTransition("(new)", state)
        sender = (decision.sender.address or "").strip().lower()
        if not sender:
            raise ValueError("a request needs an authenticated sender address")
        request_id = new_request_id()
        # 40 bits: a clash is rare, but over years of requests not negligible. No autoflush:
        # requests are flushed as they are created, so pending rows hold none to find.
        with self.session.no_autoflush:
            while self.session.get(Request, request_id) is not None:
                request_id = new_request_id()
        request = Request(
            id=request_id,
            state=state.value,
            municipality=municipality or decision.sender.municipality,
            sender=sender,
            language=language,
            created_at=now,
            updated_at=now,
            deadline_at=deadline_at,
            completed_at=now if state == RequestState.COMPLETE else None,
        )
        _apply_items(request, items)
        self.session.add(request)
        message.request = request
        if message.message_id:
            self.add_thread_id(request, message.message_id)
        self.session.flush()  # the audit row refers to the request by its id only
        self.audit(
            "request_created",
            request=request,
            message=message,
            actor=actor,
            now=now,
            data={"state": request.state, **_items_snapshot(request)},
        )
        return request

    def merge_into_request(
        self,
        request: Request,
        decision: Decision,
        message: Message,
        *,
        actor: str = SYSTEM,
        now: datetime | None = None,
    ) -> Request:
        """Merge a same-sender reply into an open request; the new text wins on conflict.

        When the merged items are complete, the request moves to `complete` (the caller then
        gates, schedules the execution and queues replies in the same unit of work).
        """
        now = self._now(now)
        if RequestState(request.state) not in MERGEABLE_STATES:
            raise InvalidTransition(request.state, "(merge)")
        before = _items_snapshot(request)
        merged = merge_items(request_items(request), decision.request)
        _apply_items(request, merged)
        request.updated_at = now
        message.request = request
        if message.message_id:
            self.add_thread_id(request, message.message_id)
        self.session.flush()
        self.audit(
            "request_merged",
            request=request,
            message=message,
            actor=actor,
            now=now,
            data={"message_key": message.message_key, "before": before,
                  "after": _items_snapshot(request)},
        )
        if not merged.missing and request.state == RequestState.INCOMPLETE:
            self.transition(request, RequestState.COMPLETE, actor=actor, now=now)
        return request

    def add_thread_id(self, request: Request, message_id: str) -> None:
        """Remember a Message-ID of the request's thread (idempotent)."""
        message_id = message_id.strip()
        state = sa_inspect(request)
        # a request not yet in the database (created in this unit of work) has no rows to ask
        # for: its collection starts empty without a query
        if state.transient or state.pending or "thread_ids" not in state.unloaded:
            if not any(t.message_id == message_id for t in request.thread_ids):
                request.thread_ids.append(ThreadId(message_id=message_id))
            return
        # Not loaded: ask for the one row instead of loading the whole thread (the query
        # autoflushes, so ids added earlier in this unit of work are seen), and add the row
        # without touching the collection, which would load it.
        known = self.session.scalar(
            select(func.count()).select_from(ThreadId).where(
                ThreadId.request_id == request.id, ThreadId.message_id == message_id
            )
        )
        if not known:
            self.session.add(ThreadId(request_id=request.id, message_id=message_id))

    def transition(
        self,
        request: Request,
        new_state: RequestState | str,
        *,
        actor: str = SYSTEM,
        now: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Change state if the state machine allows it (else InvalidTransition); audit it."""
        now = self._now(now)
        old = request.state
        new = validate_transition(old, new_state)
        request.state = new.value
        request.updated_at = now
        if new == RequestState.COMPLETE and request.completed_at is None:
            request.completed_at = now
        if new == RequestState.EXECUTED:
            request.executed_at = now
        if new in FINAL_STATES:
            request.closed_at = now
        self.audit(
            "state_changed",
            request=request,
            actor=actor,
            now=now,
            data={"from": old, "to": new.value, **(data or {})},
        )

    def approve(self, request: Request, *, by: str, now: datetime | None = None) -> None:
        """Four-eyes gate (#5): `awaiting_approval → complete`, recording who approved."""
        now = self._now(now)
        self.transition(request, RequestState.COMPLETE, actor=by, now=now,
                        data={"approved_by": by})
        request.approved_by = by
        request.approved_at = now

    def deny(
        self, request: Request, *, by: str, reason: str, now: datetime | None = None
    ) -> None:
        """Four-eyes gate (#5): `awaiting_approval → denied`, recording who and why."""
        now = self._now(now)
        self.transition(request, RequestState.DENIED, actor=by, now=now,
                        data={"denied_by": by, "reason": reason})
        request.denied_by = by
        request.denied_at = now
        request.result_detail = reason

    # ------------------------------------------------------------------- outbox

    def queue_reply(
        self,
        *,
        kind: str,
        to_address: str,
        subject: str,
        body: str,
        rfc822: bytes,
        reply_message_id: str,
        request: Request | None = None,
        message: Message | None = None,
        now: datetime | None = None,
    ) -> OutboxItem:
        """Queue a fully built reply; its Message-ID joins the request's thread."""
        now = self._now(now)
        if message is not None and message.id is None:
            self.session.flush()
        item = OutboxItem(
            kind=kind,
            to_address=to_address,
            subject=subject,
            body=body,
            rfc822=rfc822,
            reply_message_id=reply_message_id.strip(),
            state=OutboxState.QUEUED,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            request=request,
            message_id=message.id if message is not None else None,
        )
        self.session.add(item)
        if request is not None:
            self.add_thread_id(request, item.reply_message_id)
        self.session.flush()
        self.audit(
            "reply_queued",
            request=request,
            message=message,
            now=now,
            data={"outbox_id": item.id, "kind": kind, "to": to_address,
                  "reply_message_id": item.reply_message_id},
        )
        return item

    def get_outbox(self, outbox_id: int) -> OutboxItem:
        item = self.session.get(OutboxItem, outbox_id)
        if item is None:
            raise LookupError(f"no outbox row {outbox_id}")
        return item

    def mark_outbox_sent(self, outbox_id: int, *, now: datetime | None = None) -> bool:
        """SMTP accepted the reply. Idempotent: a second call changes nothing (returns False).

        One UPDATE that says what it changed, not a load and a flush: it runs once per reply
        sent, right after the SMTP transaction.
        """
        now = self._now(now)
        changed = self.session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == outbox_id, OutboxItem.state != OutboxState.SENT)
            .values(state=OutboxState.SENT, sent_at=now, claimed_at=None, next_attempt_at=None)
            .returning(OutboxItem.request_id, OutboxItem.message_id, OutboxItem.kind,
                       OutboxItem.attempts, OutboxItem.reply_message_id)
        ).one_or_none()
        if changed is None:
            self.get_outbox(outbox_id)  # LookupError for a row that does not exist
            return False
        self.audit(
            "reply_sent",
            request_id=changed.request_id,
            message=changed.message_id,
            now=now,
            data={"outbox_id": outbox_id, "kind": changed.kind, "attempts": changed.attempts,
                  "reply_message_id": changed.reply_message_id},
        )
        return True

    def mark_outbox_failed(
        self,
        outbox_id: int,
        error: str,
        *,
        permanent: bool = False,
        now: datetime | None = None,
    ) -> OutboxItem:
        """A send attempt failed: retry after capped backoff, or give up (permanent / too many)."""
        now = self._now(now)
        item = self.get_outbox(outbox_id)
        if item.state == OutboxState.SENT:
            return item
        item.last_error = error
        item.claimed_at = None
        if permanent or item.attempts >= self._store.max_outbox_attempts:
            item.state = OutboxState.FAILED
            item.next_attempt_at = None
            event = "reply_failed"
        else:
            item.state = OutboxState.QUEUED
            item.next_attempt_at = now + self._store.outbox_backoff.delay(item.attempts)
            event = "reply_retry"
        self.audit(
            event,
            request_id=item.request_id,
            message=item.message_id,
            now=now,
            data={"outbox_id": item.id, "attempts": item.attempts, "error": error,
                  "next_attempt_at": _iso(item.next_attempt_at)},
        )
        return item

    def count_replies_to(self, address: str, since: datetime) -> int:
        """Replies to `address` queued since `since` (for `max_per_sender_per_hour`)."""
        query = select(func.count(OutboxItem.id)).where(
            func.lower(OutboxItem.to_address) == address.strip().lower(),
            OutboxItem.created_at >= since,
        )
        return int(self.session.scalar(query) or 0)

    def count_executed(
        self,
        since: datetime,
        *,
        municipality: str | None = None,
        account_email: str | None = None,
        include_in_flight: bool = False,
        exclude_request_id: str | None = None,
    ) -> int:
        """Requests executed since `since`, for the reset limits of issue #5.

        `include_in_flight` also counts requests on their way to a reset right now (`complete`
        with an execution queued, `executing`, `awaiting_manual_reset`): otherwise a burst
        decided in one poll would all pass the limit before the first of them ran.
        """
        executed = and_(Request.executed_at.is_not(None), Request.executed_at >= since)
        in_flight = Request.state.in_([RequestState.COMPLETE.value, RequestState.EXECUTING.value,
                                       RequestState.AWAITING_MANUAL_RESET.value])
        query = select(func.count(Request.id)).where(
            or_(executed, in_flight) if include_in_flight else executed
        )
        if exclude_request_id is not None:
            query = query.where(Request.id != exclude_request_id)
        if municipality is not None:
            query = query.where(Request.municipality == municipality)
        if account_email is not None:
            query = query.where(func.lower(Request.account_email) == account_email.lower())
        return int(self.session.scalar(query) or 0)

    # --------------------------------------------------------------- executions

    def create_execution(
        self,
        request: Request,
        *,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> Execution:
        """Record the intent to reset before anything is called; one per key (idempotent)."""
        now = self._now(now)
        key = idempotency_key or default_idempotency_key(request.id)
        existing = self.session.scalars(
            select(Execution).where(Execution.idempotency_key == key)
        ).one_or_none()
        if existing is not None:
            return existing
        execution = Execution(
            request=request,
            idempotency_key=key,
            state=ExecutionState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        self.session.add(execution)
        self.session.flush()
        self.audit(
            "execution_queued",
            request=request,
            now=now,
            data={"execution_id": execution.id, "idempotency_key": key},
        )
        return execution

    def get_execution(self, execution_id: int) -> Execution:
        """The execution with its request and what the request's outcome reply needs (latest
        message, thread ids), in three queries up front instead of lazy loads that would each
        flush the changes made so far."""
        execution = self.session.get(Execution, execution_id, options=[
            joinedload(Execution.request).selectinload(Request.messages),
            joinedload(Execution.request).selectinload(Request.thread_ids),
        ])
        if execution is None:
            raise LookupError(f"no execution {execution_id}")
        return execution

    def record_execution_result(
        self, execution_id: int, result: ExecutionResult, *, now: datetime | None = None
    ) -> Execution:
        """Store what the executor said and move the request on.

        succeeded → request `executed`; failed → `execution_failed`; retry → request back to
        `complete` and the execution due again after capped backoff; pending_human →
        `awaiting_manual_reset`. A result for an execution that is no longer `running` (a
        reclaim overtook a slow worker) is only audited, never applied twice.
        """
        now = self._now(now)
        execution = self.get_execution(execution_id)
        request = execution.request
        data = {"execution_id": execution.id, "code": result.code, "detail": result.detail,
                "attempts": execution.attempts}
        if execution.state != ExecutionState.RUNNING:
            self.audit("execution_result_late", request=request, now=now,
                       data={**data, "state": execution.state, "status": result.status.value})
            return execution
        execution.result_code = result.code
        execution.detail = result.detail
        execution.claimed_at = None
        request.result_code = result.code
        request.result_detail = result.detail
        step = after_execution(result.status)  # domain/lifecycle.py decides, we apply
        execution.state = step.execution_state
        if step.retry:
            execution.next_attempt_at = now + self._store.execution_backoff.delay(
                execution.attempts
            )
            self.audit(step.event, request=request, now=now,
                       data={**data, "next_attempt_at": _iso(execution.next_attempt_at)})
            self.transition(request, step.request_state, now=now,
                            data={"retry_at": _iso(execution.next_attempt_at)})
            return execution
        execution.next_attempt_at = None
        execution.finished_at = now
        self.audit(step.event, request=request, now=now, data=data)
        self.transition(request, step.request_state, now=now)
        return execution

    # ------------------------------------------------------------------ mailbox

    def get_mailbox_state(self, mailbox: str) -> MailboxState | None:
        return self.session.get(MailboxState, mailbox)

    def set_mailbox_state(
        self,
        mailbox: str,
        *,
        uidvalidity: int,
        last_seen_uid: int,
        now: datetime | None = None,
    ) -> MailboxState:
        """Advance the position; a new UIDVALIDITY resets it (and is audited)."""
        now = self._now(now)
        row = self.session.get(MailboxState, mailbox)
        if row is None:
            row = MailboxState(mailbox=mailbox, uidvalidity=uidvalidity,
                               last_seen_uid=last_seen_uid, updated_at=now)
            self.session.add(row)
        elif row.uidvalidity != uidvalidity:
            self.audit("uidvalidity_changed", now=now,
                       data={"mailbox": mailbox, "old": row.uidvalidity, "new": uidvalidity,
                             "old_last_seen_uid": row.last_seen_uid})
            row.uidvalidity = uidvalidity
            row.last_seen_uid = last_seen_uid
        else:
            row.last_seen_uid = max(row.last_seen_uid, last_seen_uid)
        row.updated_at = now
        self.session.flush()
        return row

    # -------------------------------------------------------------------- audit

    def audit(
        self,
        event: str,
        *,
        request: Request | None = None,
        request_id: str | None = None,
        message: Message | int | None = None,
        actor: str = SYSTEM,
        data: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> AuditEntry:
        """Append one event. There is deliberately no way to change or remove it."""
        if request is not None:
            request_id = request.id
        message_pk: int | None
        if isinstance(message, Message):
            if message.id is None:
                self.session.flush()
            message_pk = message.id
        else:
            message_pk = message
        entry = AuditEntry(
            at=self._now(now),
            request_id=request_id,
            message_id=message_pk,
            event=event,
            actor=actor,
            data=data or {},
        )
        self.session.add(entry)
        return entry

    def audit_entries(
        self,
        *,
        request_id: str | None = None,
        message_id: int | None = None,
        event: str | None = None,
    ) -> list[AuditEntry]:
        query = select(AuditEntry)
        if request_id is not None:
            query = query.where(AuditEntry.request_id == request_id)
        if message_id is not None:
            query = query.where(AuditEntry.message_id == message_id)
        if event is not None:
            query = query.where(AuditEntry.event == event)
        return list(self.session.scalars(query.order_by(AuditEntry.id)))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _guard_audit_log(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, AuditEntry):
            raise AuditLogIsAppendOnly("audit_log rows cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, AuditEntry) and session.is_modified(obj):
            raise AuditLogIsAppendOnly("audit_log rows cannot be changed")


class Store:
    """Entry point of the storage adapter: units of work and the claim queues."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease: timedelta = timedelta(minutes=10),
        outbox_backoff: Backoff = RETRY_BACKOFF,
        execution_backoff: Backoff = RETRY_BACKOFF,
        max_outbox_attempts: int = 20,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.outbox_backoff = outbox_backoff
        self.execution_backoff = execution_backoff
        self.max_outbox_attempts = max_outbox_attempts
        self.clock = clock
        # expire_on_commit=False: objects stay readable after the block for logging.
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", _guard_audit_log)

    @classmethod
    def from_url(cls, url: str, *, read_only: bool = False, **kwargs: Any) -> Store:
        return cls(create_db_engine(url, read_only=read_only), **kwargs)

    @property
    def _skip_locked(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One transaction: committed when the block ends normally, rolled back on exception."""
        with self._sessions() as session, session.begin():
            yield UnitOfWork(self, session)

    def claim_due_outbox(
        self, *, limit: int = 20, now: datetime | None = None
    ) -> list[OutboxClaim]:
        """Claim queued replies that are due (and expired `sending` leases) for this worker.

        Commits before returning: the rows are `sending` with `attempts` counted, so no other
        worker takes them until the lease expires.
        """
        now = now if now is not None else self.clock()
        due = or_(
            and_(OutboxItem.state == OutboxState.QUEUED, OutboxItem.next_attempt_at <= now),
            and_(OutboxItem.state == OutboxState.SENDING,
                 OutboxItem.claimed_at <= now - self.lease),
        )
        query = (
            select(OutboxItem).where(due)
            .options(undefer(OutboxItem.rfc822))  # the bytes to send, in the same query
            .order_by(OutboxItem.next_attempt_at, OutboxItem.id).limit(limit)
        )
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True)
        claims: list[OutboxClaim] = []
        with self.unit_of_work() as uow:
            for item in uow.session.scalars(query).all():
                reclaimed = item.state == OutboxState.SENDING
                item.state = OutboxState.SENDING
                item.claimed_at = now
                item.attempts += 1
                if reclaimed:
                    uow.audit("reply_reclaimed", request_id=item.request_id,
                              message=item.message_id, now=now,
                              data={"outbox_id": item.id, "attempts": item.attempts})
                claims.append(OutboxClaim(
                    id=item.id, request_id=item.request_id, message_id=item.message_id,
                    kind=item.kind, to_address=item.to_address,
                    reply_message_id=item.reply_message_id, rfc822=item.rfc822,
                    attempts=item.attempts, reclaimed=reclaimed,
                ))
        return claims

    def claim_due_executions(
        self, *, limit: int = 5, now: datetime | None = None, request_id: str | None = None
    ) -> list[ExecutionClaim]:
        """Claim due executions (pending, retry, expired `running` leases); request → executing.

        Only executions of requests in `complete` (or still `executing` after a crash) are due:
        a request waiting for approval or denied never runs, whatever its execution row says.
        `request_id`: only that request's (`requests approve` runs the one it approved).
        """
        now = now if now is not None else self.clock()
        due = or_(
            and_(Execution.state.in_([ExecutionState.PENDING, ExecutionState.RETRY]),
                 Execution.next_attempt_at <= now),
            and_(Execution.state == ExecutionState.RUNNING,
                 Execution.claimed_at <= now - self.lease),
        )
        query = (
            select(Execution)
            .join(Request, Request.id == Execution.request_id)
            .where(due, Request.state.in_([RequestState.COMPLETE.value,
                                           RequestState.EXECUTING.value]))
            # the request from the join above and its messages in one more query, instead
            # of two lazy loads per claimed execution
            .options(contains_eager(Execution.request).selectinload(Request.messages))
            .order_by(Execution.next_attempt_at, Execution.id)
            .limit(limit)
        )
        if request_id is not None:
            query = query.where(Request.id == request_id)
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True, of=(Execution, Request))
        claims: list[ExecutionClaim] = []
        with self.unit_of_work() as uow:
            for execution in uow.session.scalars(query).all():
                request = execution.request
                reclaimed = execution.state == ExecutionState.RUNNING
                execution.state = ExecutionState.RUNNING
                execution.claimed_at = now
                execution.attempts += 1
                if request.state != RequestState.EXECUTING:
                    uow.transition(request, RequestState.EXECUTING, now=now)
                uow.audit("execution_reclaimed" if reclaimed else "execution_started",
                          request=request, now=now,
                          data={"execution_id": execution.id, "attempts": execution.attempts,
                                "idempotency_key": execution.idempotency_key})
                claims.append(ExecutionClaim(
                    id=execution.id, attempts=execution.attempts, reclaimed=reclaimed,
                    work=execution_job(request, execution.idempotency_key),
                ))
        return claims
