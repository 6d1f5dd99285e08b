"""Decided messages and the mailbox position: the message store of a unit of work.

"Decided once" lives here: `messages.message_key` is unique, and `record` raises
`DuplicateMessage` for a key already decided, also when a concurrent worker inserted it first
(caught inside a savepoint so the surrounding transaction stays usable). A DKIM signature
already seen under another key (`signatures_seen`) makes the message a replay of that one. A
`deferred` message, or one that failed with a processing error, may be decided again: its row
is updated in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from reset_mailbot.adapters.db.audit_log import AuditedStore
from reset_mailbot.adapters.db.schema import MailboxState, Message, SignatureSeen
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Outcome


class DuplicateMessage(Exception):
    """The message key was already decided: the policy's [duplicate].

    `existing` is the stored row, usable while the unit of work is open (catch the exception
    inside the block to audit the duplicate or finish a MOVE); the plain fields survive the
    rollback of a block the exception leaves.

    Not every duplicate is a replay: when `existing` has the same mailbox/UIDVALIDITY/UID and
    `folder_moved_to` is None, the daemon died between the commit and the IMAP MOVE, and the
    right action is only to finish the move (see `MessageStore.pending_move`).
    """

    def __init__(self, existing: Message) -> None:
        super().__init__(f"message already decided: {existing.message_key}")
        self.existing = existing
        self.message_key = existing.message_key
        self.existing_id = existing.id
        self.outcome = existing.outcome
        self.folder_moved_to = existing.folder_moved_to


class MessageStore(AuditedStore):
    """Messages as decided, with their bytes (for reprocessing) until retention purges them."""

    def lock(self, message_pk: int) -> Message | None:
        """The message row, locked and read afresh (see `RequestStore.lock`)."""
        return self.session.get(Message, message_pk, with_for_update=True,
                                populate_existing=True)

    def by_key(self, message_key: str) -> Message | None:
        return self.session.scalars(
            select(Message).where(Message.message_key == message_key)
        ).one_or_none()

    def get(self, message_id: int) -> Message | None:
        return self.session.get(Message, message_id)

    def by_uid(self, mailbox: str, uidvalidity: int, uid: int) -> Message | None:
        return self.session.scalars(
            select(Message).where(
                Message.mailbox == mailbox, Message.uidvalidity == uidvalidity, Message.uid == uid
            )
        ).one_or_none()

    def by_uids(
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

    def record(
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
        replayed = self.with_signature(decision.replay_keys)
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
        self._audit.append(
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

    def record_failed(
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
        self._audit.append(
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
        existing = self.by_key(message_key)
        if existing is None and mailbox is not None and uidvalidity is not None and uid is not None:
            # The same IMAP message decided again (it was deferred or broke processing) keeps
            # its row even when its key changes: a deferred decision has not verified DKIM
            # yet, so it is keyed by its bytes; the verified one by its signed Message-ID.
            same = self.by_uid(mailbox, uidvalidity, uid)
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

    def with_signature(self, keys: Sequence[str]) -> Message | None:
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
        if other is not None:  # recorded since `record` looked
            raise DuplicateMessage(self.session.get_one(Message, other))
        try:
            with self.session.begin_nested():
                for key in fresh:
                    if key not in known:
                        self.session.add(SignatureSeen(signature=key, message_id=message.id))
        except IntegrityError:
            replayed = self.with_signature(fresh)
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
            existing = self.by_key(message.message_key)
            if existing is None:
                raise
            raise DuplicateMessage(existing) from None

    def mark_moved(
        self, message: Message | int, folder: str, *, now: datetime | None = None
    ) -> Message:
        """Record that the IMAP MOVE to `folder` succeeded (done after the decision commit)."""
        row = self._message(message)
        row.folder_moved_to = folder
        row.moved_at = self._now(now)
        return row

    def mark_all_moved(
        self, messages: Iterable[int], folder: str, *, now: datetime | None = None
    ) -> int:
        """`mark_moved` for a whole batch in one statement; returns the rows updated."""
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

    def pending_move(
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

    def _message(self, message: Message | int) -> Message:
        if isinstance(message, Message):
            return message
        row = self.session.get(Message, message)
        if row is None:
            raise LookupError(f"no message {message}")
        return row

class MailboxPositions(AuditedStore):
    """How far each mailbox has been read (UIDVALIDITY and the last UID seen)."""

    def get(self, mailbox: str) -> MailboxState | None:
        return self.session.get(MailboxState, mailbox)

    def set(
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
            self._audit.append("uidvalidity_changed", now=now,
                       data={"mailbox": mailbox, "old": row.uidvalidity, "new": uidvalidity,
                             "old_last_seen_uid": row.last_seen_uid})
            row.uidvalidity = uidvalidity
            row.last_seen_uid = last_seen_uid
        else:
            row.last_seen_uid = max(row.last_seen_uid, last_seen_uid)
        row.updated_at = now
        self.session.flush()
        return row
