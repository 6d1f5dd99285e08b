"""The outbox: every reply is queued in the decision's transaction, then sent by a worker.

**The SMTP trade-off.** SMTP has no idempotency key. If a worker dies after the server
accepted DATA but before `mark_sent` committed, the claim is taken over (after the owner's
heartbeat has been silent for `[ha] claim_timeout_seconds`, or after the lease for claims
without an owner) and the reply is sent again.
We choose that rare duplicate over a reply that is silently never sent; it is the same bytes
with the same Message-ID (stored before the first attempt), so it is recognisably the same
message, and the window is one SMTP transaction plus one small commit. Reclaims are written
to the audit log (`reply_reclaimed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, undefer

from reset_mailbot.adapters.db.audit_log import AuditedStore, AuditLog
from reset_mailbot.adapters.db.bound import iso
from reset_mailbot.adapters.db.instances import owner_gone
from reset_mailbot.adapters.db.requests import RequestStore
from reset_mailbot.adapters.db.schema import Message, OutboxItem, Request
from reset_mailbot.domain.backoff import Backoff


class OutboxState:
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


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


class OutboxStore(AuditedStore):
    def __init__(
        self, session: Session, clock: Callable[[], datetime], audit: AuditLog, *,
        requests: RequestStore, backoff: Backoff, max_attempts: int,
    ) -> None:
        super().__init__(session, clock, audit)
        self._requests = requests
        self._backoff = backoff
        self._max_attempts = max_attempts

    def queue(
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
            self._requests.add_thread_id(request, item.reply_message_id)
        self.session.flush()
        self._audit.append(
            "reply_queued",
            request=request,
            message=message,
            now=now,
            data={"outbox_id": item.id, "kind": kind, "to": to_address,
                  "reply_message_id": item.reply_message_id},
        )
        return item

    def get(self, outbox_id: int) -> OutboxItem:
        item = self.session.get(OutboxItem, outbox_id)
        if item is None:
            raise LookupError(f"no outbox row {outbox_id}")
        return item

    def mark_sent(self, outbox_id: int, *, now: datetime | None = None) -> bool:
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
            self.get(outbox_id)  # LookupError for a row that does not exist
            return False
        self._audit.append(
            "reply_sent",
            request_id=changed.request_id,
            message=changed.message_id,
            now=now,
            data={"outbox_id": outbox_id, "kind": changed.kind, "attempts": changed.attempts,
                  "reply_message_id": changed.reply_message_id},
        )
        return True

    def mark_failed(
        self,
        outbox_id: int,
        error: str,
        *,
        permanent: bool = False,
        now: datetime | None = None,
    ) -> OutboxItem:
        """A send attempt failed: retry after capped backoff, or give up (permanent / too many)."""
        now = self._now(now)
        item = self.get(outbox_id)
        if item.state == OutboxState.SENT:
            return item
        item.last_error = error
        item.claimed_at = None
        if permanent or item.attempts >= self._max_attempts:
            item.state = OutboxState.FAILED
            item.next_attempt_at = None
            event = "reply_failed"
        else:
            item.state = OutboxState.QUEUED
            item.next_attempt_at = now + self._backoff.delay(item.attempts)
            event = "reply_retry"
        self._audit.append(
            event,
            request_id=item.request_id,
            message=item.message_id,
            now=now,
            data={"outbox_id": item.id, "attempts": item.attempts, "error": error,
                  "next_attempt_at": iso(item.next_attempt_at)},
        )
        return item

    def requeue_failed(
        self, outbox_id: int, *, actor: str, now: datetime | None = None
    ) -> OutboxItem | None:
        """Queue a reply that failed for good again, as it is: the same stored bytes and
        Message-ID, due now, attempts from zero (`replies resend`). One conditional UPDATE, so
        two people resending at once queue it once; None (nothing changed) unless the row is
        `failed` and still holds its bytes (retention empties them). Audited as `reply_resent`
        with `actor`, in the caller's transaction."""
        now = self._now(now)
        previous = self.session.execute(
            select(OutboxItem.attempts, OutboxItem.last_error)
            .where(OutboxItem.id == outbox_id)
        ).one_or_none()
        changed = self.session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == outbox_id, OutboxItem.state == OutboxState.FAILED,
                   func.length(OutboxItem.rfc822) > 0)
            .values(state=OutboxState.QUEUED, attempts=0, next_attempt_at=now,
                    claimed_at=None, claimed_by=None, last_error=None)
            .returning(OutboxItem.id)
        ).one_or_none()
        if changed is None or previous is None:
            return None
        item = self.session.get(OutboxItem, outbox_id, populate_existing=True)
        assert item is not None
        self._audit.append(
            "reply_resent", request_id=item.request_id, message=item.message_id, actor=actor,
            now=now,
            data={"outbox_id": item.id, "kind": item.kind, "to": item.to_address,
                  "reply_message_id": item.reply_message_id,
                  "previous_attempts": previous.attempts, "previous_error": previous.last_error},
        )
        return item

    def listing(
        self, *, state: str | None = None, request_id: str | None = None, limit: int = 200,
    ) -> list[OutboxItem]:
        """Replies newest first (`replies list`), without their bytes."""
        query = select(OutboxItem)
        if state is not None:
            query = query.where(OutboxItem.state == state)
        if request_id is not None:
            query = query.where(OutboxItem.request_id == request_id)
        query = query.order_by(OutboxItem.created_at.desc(), OutboxItem.id.desc()).limit(limit)
        return list(self.session.scalars(query).all())

    def count_replies_to(self, address: str, since: datetime) -> int:
        """Replies to `address` queued since `since` (for `max_per_sender_per_hour`)."""
        query = select(func.count(OutboxItem.id)).where(
            func.lower(OutboxItem.to_address) == address.strip().lower(),
            OutboxItem.created_at >= since,
        )
        return int(self.session.scalar(query) or 0)

    def claim_due(
        self, *, lease: timedelta, limit: int, now: datetime, owner: str | None = None,
        claim_timeout: timedelta | None = None,
    ) -> list[OutboxClaim]:
        """Claim queued replies that are due (and expired `sending` leases) for this worker.

        The caller commits (`Store.claim_due_outbox`): then the rows are `sending` with
        `attempts` counted, and no other worker takes them until the lease expires. PostgreSQL
        skips rows another claimer has locked (`FOR UPDATE SKIP LOCKED`); SQLite's write lock
        serialises claimers. `owner` and `claim_timeout`: as for executions (a `sending` row of
        a silent owner is due again after `claim_timeout`, any after `lease`).
        """
        due = or_(
            and_(OutboxItem.state == OutboxState.QUEUED, OutboxItem.next_attempt_at <= now),
            and_(OutboxItem.state == OutboxState.SENDING,
                 or_(OutboxItem.claimed_at <= now - lease,
                     owner_gone(OutboxItem.claimed_by, now, claim_timeout or lease))),
        )
        query = (
            select(OutboxItem).where(due)
            .options(undefer(OutboxItem.rfc822))  # the bytes to send, in the same query
            .order_by(OutboxItem.next_attempt_at, OutboxItem.id).limit(limit)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claims: list[OutboxClaim] = []
        for item in self.session.scalars(query).all():
            reclaimed = item.state == OutboxState.SENDING
            item.state = OutboxState.SENDING
            item.claimed_at = now
            item.claimed_by = owner
            item.attempts += 1
            if reclaimed:
                self._audit.append("reply_reclaimed", request_id=item.request_id,
                                   message=item.message_id, now=now,
                                   data={"outbox_id": item.id, "attempts": item.attempts,
                                         "instance": owner})
            claims.append(OutboxClaim(
                id=item.id, request_id=item.request_id, message_id=item.message_id,
                kind=item.kind, to_address=item.to_address,
                reply_message_id=item.reply_message_id, rfc822=item.rfc822,
                attempts=item.attempts, reclaimed=reclaimed,
            ))
        return claims
