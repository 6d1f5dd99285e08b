"""The unit-of-work port the service layer talks to, and the `Store` that opens one.

A `UnitOfWork` is one transaction with its stores: `messages` (and `mailboxes`), `requests`,
`executions`, `outbox`, `audit_log` and `instances` (heartbeats and the leader lease). The
stores load and store; the domain decides (`domain/lifecycle.py`, `domain/request_state.py`);
the service applies the decision through them. Read models (views, stats, metrics, the SLA
scan, retention's selection) are in `queries.py` and `retention.py`.

How the daemon keeps "at most once, never lost" (issue #4, item 4) on the storage side:

* **One transaction per batch, a savepoint per message.** `Store.unit_of_work()` yields a
  `UnitOfWork`; the decided messages, the new or merged requests, the queued replies and the
  execution intents are written in it and committed together when the block ends without an
  exception (any exception rolls all of it back; a message that fails inside its savepoint
  rolls back alone). Only after that commit does the daemon MOVE the messages or talk to
  SMTP and executors.
* **Decided once.** See `messages.py`: a unique message key and the DKIM signatures seen.
* **Claims.** Due outbox rows and executions are claimed by `Store.claim_due_outbox` /
  `Store.claim_due_executions`, each in its own committed transaction that sets the row to
  `sending` / `running` and counts the attempt. PostgreSQL uses `SELECT ... FOR UPDATE SKIP
  LOCKED`, so two workers never get the same row; SQLite takes the write lock up front
  (`BEGIN IMMEDIATE`, see `engine.py`), which serialises claimers. A row left in `sending` or
  `running` whose owner stopped heart-beating for `claim_timeout` (instances.py), or longer than
  the lease whatever its owner, becomes claimable again. Executions carry an
  idempotency key, so a repeated call is the same reset; for the one window SMTP leaves open
  see `outbox.py`.
* **Audit log is append-only** (`audit_log.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from reset_mailbot.adapters.db.audit_log import AuditLog, guard_audit_log
from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.executions import ExecutionClaim, ExecutionStore
from reset_mailbot.adapters.db.instances import InstanceStore
from reset_mailbot.adapters.db.messages import MailboxPositions, MessageStore
from reset_mailbot.adapters.db.outbox import OutboxClaim, OutboxStore
from reset_mailbot.adapters.db.requests import RequestStore
from reset_mailbot.adapters.db.schema import Message, utcnow
from reset_mailbot.domain.backoff import Backoff
from reset_mailbot.domain.context import EarlierMessage, Facts, ThreadRequest
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Outcome

#: the advisory lock key of `serialise_reset_limits` ("rmlimits" in ASCII, any fixed number)
RESET_LIMITS_LOCK = 0x726D6C696D697473
# replies and executions: 30 s, 1 min, 2 min, ... 1 h
RETRY_BACKOFF = Backoff(timedelta(seconds=30), timedelta(hours=1))


class UnitOfWork:
    """One session, one transaction, and the stores bound to it (see `Store.unit_of_work`)."""

    def __init__(self, store: Store, session: Session) -> None:
        self.session = session
        clock = store.clock
        self.audit_log = AuditLog(session, clock)
        self.messages = MessageStore(session, clock, self.audit_log)
        self.mailboxes = MailboxPositions(session, clock, self.audit_log)
        self.requests = RequestStore(session, clock, self.audit_log)
        self.outbox = OutboxStore(session, clock, self.audit_log, requests=self.requests,
                                  backoff=store.outbox_backoff,
                                  max_attempts=store.max_outbox_attempts)
        self.executions = ExecutionStore(session, clock, self.audit_log,
                                         requests=self.requests,
                                         backoff=store.execution_backoff)
        self.instances = InstanceStore(session, clock)

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

    def serialise_reset_limits(self) -> None:
        """Until this transaction ends, no other one may count resets against the limits
        (issue #15): two instances deciding different messages for one municipality would
        otherwise both count 9 of 10 and both go ahead. PostgreSQL: a transaction-level
        advisory lock; SQLite: the write lock each transaction already takes (engine.py)."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": RESET_LIMITS_LOCK})

    def facts_for(self, decision: Decision) -> Facts:
        """What the store knows about a decided message (domain/context.py reads it): an
        earlier message under its key or one of its DKIM signatures, and - for an incomplete
        message, the only one that can be a follow-up - the sender's request in its thread."""
        same_key = self.messages.by_key(decision.message_key)
        same_signature = self.messages.with_signature(decision.replay_keys)
        open_request = closed_request = None
        if decision.outcome is Outcome.INCOMPLETE:
            sender = decision.sender.address or ""
            thread = [decision.in_reply_to, *decision.references]
            tags = decision.subject_request_ids
            found = self.requests.for_thread(sender, thread, request_ids=tags)
            if found is not None:
                open_request = ThreadRequest(found.id, found.state)
            else:
                found = self.requests.for_thread(sender, thread, request_ids=tags, states=None)
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
            decidable_again=MessageStore.may_decide_again(message),
        )


class Store:
    """Entry point of the storage adapter: units of work and the claim queues."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease: timedelta = timedelta(minutes=10),
        claim_timeout: timedelta = timedelta(seconds=30),
        outbox_backoff: Backoff = RETRY_BACKOFF,
        execution_backoff: Backoff = RETRY_BACKOFF,
        max_outbox_attempts: int = 20,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.claim_timeout = claim_timeout
        #: set by a daemon (service/ha.py) once it has registered: its claims carry this id
        self.instance_id: str | None = None
        self.outbox_backoff = outbox_backoff
        self.execution_backoff = execution_backoff
        self.max_outbox_attempts = max_outbox_attempts
        self.clock = clock
        # expire_on_commit=False: objects stay readable after the block for logging.
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", guard_audit_log)

    @classmethod
    def from_url(cls, url: str, *, read_only: bool = False, **kwargs: Any) -> Store:
        return cls(create_db_engine(url, read_only=read_only), **kwargs)

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One transaction: committed when the block ends normally, rolled back on exception."""
        with self._sessions() as session, session.begin():
            yield UnitOfWork(self, session)

    def claim_due_outbox(
        self, *, limit: int = 20, now: datetime | None = None
    ) -> list[OutboxClaim]:
        """Claim due replies in a transaction of their own, committed before they are sent."""
        with self.unit_of_work() as uow:
            return uow.outbox.claim_due(lease=self.lease, limit=limit,
                                        now=now if now is not None else self.clock(),
                                        owner=self.instance_id,
                                        claim_timeout=self.claim_timeout)

    def claim_due_executions(
        self, *, limit: int = 5, now: datetime | None = None, request_id: str | None = None
    ) -> list[ExecutionClaim]:
        """Claim due executions in a transaction of their own, committed before they run."""
        with self.unit_of_work() as uow:
            return uow.executions.claim_due(lease=self.lease, limit=limit,
                                            now=now if now is not None else self.clock(),
                                            request_id=request_id, owner=self.instance_id,
                                            claim_timeout=self.claim_timeout)
