"""The database tables as SQLAlchemy 2 typed declarative models.

What is stored is what makes a decision explainable afterwards (issue #4 item 3) and what lets a
restart after a crash finish the work without acting twice (item 4): the decided message with
its decision JSON, the request and its state, the replies as fully built bytes (a re-send is
byte-identical), the execution intents with their idempotency keys, an append-only audit log and
the IMAP position per mailbox.

Columns that later issues need are here from the start so they need no rewrite: the manual and
approval states (#5) are plain strings validated by `domain.request_state`; SLA deadlines and
warnings (#6) are columns on `requests`; retention (#6) nulls `messages.raw` and anonymises rows,
recording when in `raw_purged_at` / `anonymised_at`.

State columns are strings, not database enums or CHECK constraints, so that a new state is a code
change rather than a migration; the state machine module is the one authority on valid values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# RFC 5322 limits a header line to 998 characters; a Message-ID cannot be longer.
MSGID_LEN = 998
ADDRESS_LEN = 320
INSTANCE_LEN = 200  # "host:pid:random", see adapters/db/instances.py

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores `timestamptz`. SQLite has no time zone type and SQLAlchemy's SQLite
    DateTime silently drops tzinfo, so values are converted to UTC and stored naive (the fixed
    string format then also compares correctly), and read back as UTC-aware. Naive datetimes
    are refused on the way in: a naive local time stored as UTC is a silent SLA bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: use timezone-aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Message(Base):
    """One inbound message, decided once (unique `message_key`)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid"),
        Index("ix_messages_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Message-ID, or "sha256:<hex>" of the raw bytes when there is none.
    message_key: Mapped[str] = mapped_column(String(MSGID_LEN), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(MSGID_LEN), index=True)
    mailbox: Mapped[str | None] = mapped_column(String(255))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # retention sets it to NULL. Deferred: loaded only when read, so `request.messages` (replies,
    # claims, views) does not drag every stored message's bytes (attachments: MBs) along.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    raw_purged_at: Mapped[datetime | None]
    sender: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    subject: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    # How often a decision was attempted: >1 only for `deferred` messages decided again.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(16), index=True)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    decision: Mapped[dict[str, Any] | None]
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"), index=True)
    folder_moved_to: Mapped[str | None] = mapped_column(String(255))  # after IMAP MOVE
    moved_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)  # quarantined for a processing error

    request: Mapped[Request | None] = relationship(back_populates="messages")


class Request(Base):
    """A reset request, built from one message or merged from several in a thread."""

    __tablename__ = "requests"
    __table_args__ = (Index("ix_requests_state_deadline", "state", "deadline_at"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # "R-" + 8 base32 chars
    state: Mapped[str] = mapped_column(String(32))
    municipality: Mapped[str | None] = mapped_column(String(255), index=True)
    sender: Mapped[str] = mapped_column(String(ADDRESS_LEN), index=True)  # lower case
    account_email: Mapped[str | None] = mapped_column(String(ADDRESS_LEN), index=True)
    case_reference: Mapped[str | None] = mapped_column(String(255))
    identity_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    reset_instructed: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    missing: Mapped[list[Any]] = mapped_column(default=list)
    missing_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    sla_warned_at: Mapped[datetime | None]
    sla_breached_at: Mapped[datetime | None]
    executed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]  # reached a final state
    result_code: Mapped[str | None] = mapped_column(String(64))
    result_detail: Mapped[str | None] = mapped_column(Text)
    approved_by: Mapped[str | None] = mapped_column(String(255))
    approved_at: Mapped[datetime | None]
    denied_by: Mapped[str | None] = mapped_column(String(255))
    denied_at: Mapped[datetime | None]
    anonymised_at: Mapped[datetime | None]

    messages: Mapped[list[Message]] = relationship(
        back_populates="request", order_by="Message.id"
    )
    thread_ids: Mapped[list[ThreadId]] = relationship(
        back_populates="request", cascade="all, delete-orphan"
    )
    outbox: Mapped[list[OutboxItem]] = relationship(
        back_populates="request", order_by="OutboxItem.id"
    )
    executions: Mapped[list[Execution]] = relationship(
        back_populates="request", order_by="Execution.id"
    )
    audit: Mapped[list[AuditEntry]] = relationship(order_by="AuditEntry.id", viewonly=True)


class SignatureSeen(Base):
    """A DKIM signature an earlier message carried (``dkim:`` + sha256 of its b= value).

    The same signed message arriving again is a replay whatever its Message-ID (an unsigned
    one can be changed freely): the primary key makes the second one a duplicate, also when two
    instances decide both at once. Not personal data: kept as long as the message row.
    """

    __tablename__ = "message_signatures"

    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)


class ThreadId(Base):
    """A Message-ID belonging to a request's thread: its messages' and our replies'.

    A table rather than a JSON list on `requests`, so that In-Reply-To/References lookups are an
    indexed `IN` query on every backend. The same Message-ID may belong to two requests (a
    colleague answering in the thread starts their own request).
    """

    __tablename__ = "request_thread_ids"

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(MSGID_LEN), primary_key=True, index=True)

    request: Mapped[Request] = relationship(back_populates="thread_ids")


class OutboxItem(Base):
    """A reply, fully built before it is sent, so a re-send is the same bytes and Message-ID."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    to_address: Mapped[str] = mapped_column(String(ADDRESS_LEN), index=True)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    rfc822: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # read when sending
    reply_message_id: Mapped[str] = mapped_column(String(MSGID_LEN), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(INSTANCE_LEN))  # instances.id
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    request: Mapped[Request | None] = relationship(back_populates="outbox")


class Execution(Base):
    """The intent to reset, recorded before the executor is called; its key makes retries safe."""

    __tablename__ = "executions"
    __table_args__ = (Index("ix_executions_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(INSTANCE_LEN))  # instances.id
    result_code: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    request: Mapped[Request] = relationship(back_populates="executions")


class AuditEntry(Base):
    """One event in a request's or message's story. Append-only (see `audit_log.py`)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(255), default="system")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MailboxState(Base):
    """Where the poller is in one IMAP folder: UIDVALIDITY and the highest UID fully handled."""

    __tablename__ = "mailbox_state"

    mailbox: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_seen_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Instance(Base):
    """A running daemon and its heartbeat (issue #15): a claim whose owner stopped beating for
    `[ha] claim_timeout_seconds` may be taken by another instance. No foreign key from the
    claims: a row outlives its instance's deregistration on a clean stop."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(INSTANCE_LEN), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    version: Mapped[str] = mapped_column(String(64), default="")


class Lease(Base):
    """A named lease held by one instance until `expires_at` (issue #15): `poller` is the
    leadership - the instance that reads the mailbox and runs the singleton jobs."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(INSTANCE_LEN))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
