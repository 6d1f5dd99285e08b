"""The storage adapter against real databases: SQLite (file, WAL) and PostgreSQL.

Each test gets a fresh empty database from the `database_url` fixture (tests/harness/db_fixtures.py:
a file SQLite database, and a new database in a private PostgreSQL cluster) and upgrades it with
the real Alembic migrations, so what is tested is what the daemon runs on.
"""

from __future__ import annotations

import threading
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from reset_mailbot.adapters.db import migrate, queries
from reset_mailbot.adapters.db.audit_log import AuditLogIsAppendOnly
from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.executions import ExecutionState
from reset_mailbot.adapters.db.messages import DuplicateMessage, MessageStore
from reset_mailbot.adapters.db.outbox import OutboxState
from reset_mailbot.adapters.db.schema import (
    AuditEntry,
    Base,
    Execution,
    Message,
    OutboxItem,
    Request,
    SignatureSeen,
    ThreadId,
)
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork
from reset_mailbot.adapters.executors.base import ExecutionResult, ExecutionStatus
from reset_mailbot.domain.models import Decision, Evidence, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, MissingDetail, Outcome, ReasonCode
from reset_mailbot.domain.request_state import InvalidTransition, RequestState

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SENDER = "j.jansen@utrecht.nl"



def decision(
    key: str,
    *,
    sender: str = SENDER,
    outcome: Outcome = Outcome.COMPLETE,
    account: str | None = "resident@example.org",
    identity: bool = True,
    instructed: bool = True,
    case: str | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    missing_details: dict[Item, MissingDetail] | None = None,
) -> Decision:
    request = ResetRequest(
        account_email=account,
        identity_verified=identity,
        reset_instructed=instructed,
        case_reference=case,
        evidence=[Evidence(item=Item.ACCOUNT_EMAIL, text=f"account: {account}")] if account
        else [],
        missing_details=missing_details or {},
    )
    return Decision(
        message_id=None if key.startswith("sha256:") else key,
        message_key=key,
        outcome=outcome,
        reasons=[],
        missing=request.missing,
        reply=True,
        sender=SenderInfo(address=sender, municipality="Utrecht"),
        request=request,
        in_reply_to=in_reply_to,
        references=list(references),
        subject="2FA reset",
    )


def record_complete(uow: UnitOfWork, key: str, **kwargs: object) -> tuple[Message, Request]:
    d = decision(key, **kwargs)  # type: ignore[arg-type]
    message = uow.messages.record(d, raw=b"raw " + key.encode(), sha256="ab" * 32,
                                 mailbox="INBOX", uidvalidity=7, uid=zlib.crc32(key.encode()))
    request = uow.requests.create(d, message)
    return message, request


def count(store: Store, model: type[Base]) -> int:
    with store.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


# -------------------------------------------------------------------- schema


def test_upgrade_on_empty_database_gives_exactly_the_models(database_url: str) -> None:
    assert migrate.current_revision(database_url) is None
    assert not migrate.is_up_to_date(database_url)
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()
    assert migrate.is_up_to_date(database_url)
    migrate.upgrade(database_url)  # idempotent at head
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_ensure_schema_refuses_or_upgrades(database_url: str) -> None:
    with pytest.raises(migrate.SchemaOutdated, match="reset-mailbot db upgrade"):
        migrate.ensure_schema(database_url)
    migrate.ensure_schema(database_url, auto_upgrade=True)
    assert migrate.is_up_to_date(database_url)
    migrate.ensure_schema(database_url)


def test_sqlite_pragmas(tmp_path: object) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/p.sqlite3")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_datetimes_are_utc_aware_and_naive_ones_refused(store: Store) -> None:
    amsterdam = timezone(timedelta(hours=1))
    with store.unit_of_work() as uow:
        _, request = record_complete(uow, "<tz@utrecht.nl>")
        request.deadline_at = datetime(2026, 11, 27, 17, 0, tzinfo=amsterdam)
    with store.unit_of_work() as uow:
        loaded = uow.requests.get(request.id)
        assert loaded is not None and loaded.deadline_at is not None
        assert loaded.deadline_at.utcoffset() == timedelta(0)
        assert loaded.deadline_at == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
        assert loaded.created_at == T0
    with pytest.raises(StatementError, match="naive datetime"), store.unit_of_work() as uow:
        loaded = uow.requests.get(request.id)
        assert loaded is not None
        loaded.deadline_at = datetime(2026, 11, 27, 17, 0)
        uow.flush()


# ---------------------------------------------------------- at most once


def test_second_insert_of_the_same_key_is_a_duplicate(store: Store) -> None:
    with store.unit_of_work() as uow:
        record_complete(uow, "<dup@utrecht.nl>")
    with pytest.raises(DuplicateMessage) as info, store.unit_of_work() as uow:
        uow.messages.record(decision("<dup@utrecht.nl>"), raw=b"again")
    assert info.value.message_key == "<dup@utrecht.nl>" and info.value.outcome == "complete"
    assert count(store, Message) == 1
    with store.unit_of_work() as uow:
        found = uow.messages.by_key("<dup@utrecht.nl>")
        assert found is not None and found.outcome == "complete"
        assert uow.messages.by_key("sha256:" + "0" * 64) is None


def test_concurrent_insert_of_the_same_key_is_a_duplicate_and_the_uow_stays_usable(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that looked before another committed still gets DuplicateMessage, not a crash."""
    with store.unit_of_work() as uow:
        uow.messages.record(decision("sha256:" + "1" * 64), raw=b"x")
    real = MessageStore.by_key
    calls = {"n": 0}

    def stale_first_look(self: MessageStore, key: str) -> Message | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else real(self, key)

    monkeypatch.setattr(MessageStore, "by_key", stale_first_look)
    with store.unit_of_work() as uow:
        with pytest.raises(DuplicateMessage):
            uow.messages.record(decision("sha256:" + "1" * 64), raw=b"x")
        uow.audit_log.append("duplicate_ignored", data={"message_key": "sha256:" + "1" * 64})
    assert count(store, Message) == 1
    with store.unit_of_work() as uow:
        assert [e.event for e in uow.audit_log.entries(event="duplicate_ignored")] == [
            "duplicate_ignored"
        ]


def test_same_signature_under_another_key_is_a_replay(store: Store) -> None:
    """Issue #11: an unsigned Message-ID can be changed; the DKIM signature cannot."""
    first = decision("sha256:" + "a" * 64)
    first.replay_keys = ["dkim:" + "f" * 64, "dkim:" + "e" * 64]
    with store.unit_of_work() as uow:
        uow.messages.record(first, raw=b"first")
    replay = decision("sha256:" + "b" * 64)
    replay.replay_keys = ["dkim:" + "e" * 64]
    with store.unit_of_work() as uow:
        with pytest.raises(DuplicateMessage) as info:
            uow.messages.record(replay, raw=b"replay")
        assert info.value.message_key == first.message_key
        other = decision("sha256:" + "c" * 64)  # the unit of work goes on after the replay
        other.replay_keys = ["dkim:" + "d" * 64]
        uow.messages.record(other, raw=b"other")
    assert count(store, Message) == 2
    assert count(store, SignatureSeen) == 3


def test_concurrent_replay_is_caught_by_the_signature_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances deciding the same signed message under two keys at once: the primary key
    on message_signatures makes the second a duplicate, and its message row is undone."""
    first = decision("sha256:" + "3" * 64)
    first.replay_keys = ["dkim:" + "9" * 64]
    with store.unit_of_work() as uow:
        uow.messages.record(first, raw=b"one")
    monkeypatch.setattr(MessageStore, "with_signature",
                        lambda self, keys, real=MessageStore.with_signature, n=[0]:
                        (n.__setitem__(0, n[0] + 1), None if n[0] == 1 else real(self, keys))[1])
    late = decision("sha256:" + "4" * 64)
    late.replay_keys = ["dkim:" + "9" * 64]
    with pytest.raises(DuplicateMessage), store.unit_of_work() as uow:
        uow.messages.record(late, raw=b"two")
    assert count(store, Message) == 1
    assert count(store, SignatureSeen) == 1


def test_deferred_message_is_decided_again_in_place(store: Store) -> None:
    key = "<deferred@utrecht.nl>"
    with store.unit_of_work() as uow:
        d = decision(key, outcome=Outcome.DEFERRED)
        d.reasons.append(ReasonCode.DNS_TEMPORARY_FAILURE)
        uow.messages.record(d, raw=b"r", mailbox="INBOX", uidvalidity=1, uid=5)
    with store.unit_of_work() as uow:
        message = uow.messages.record(decision(key), raw=b"r", mailbox="INBOX",
                                     uidvalidity=1, uid=5)
        assert message.attempts == 2 and message.outcome == "complete"
    with pytest.raises(DuplicateMessage), store.unit_of_work() as uow:
        uow.messages.record(decision(key), raw=b"r")
    assert count(store, Message) == 1


def test_failed_message_keeps_its_error_and_can_be_decided_later(store: Store) -> None:
    key = "sha256:" + "2" * 64
    with store.unit_of_work() as uow:
        failed = uow.messages.record_failed(message_key=key, error="ValueError: boom",
                                           raw=b"\xff", mailbox="INBOX", uidvalidity=1, uid=9)
        uow.messages.mark_moved(failed, "Quarantine")
    with store.unit_of_work() as uow:
        errors = queries.list_messages(uow, errors_only=True)
        assert [m.error for m in errors] == ["ValueError: boom"]
        message = uow.messages.record(decision(key), raw=b"\xff")  # messages reprocess
        assert message.error is None and message.outcome == "complete"


def test_an_exception_inside_the_unit_of_work_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError, match="crash"), store.unit_of_work() as uow:
        message, request = record_complete(uow, "<atomic@utrecht.nl>")
        uow.outbox.queue(kind="confirmation", to_address=SENDER, subject="Re: x", body="b",
                        rfc822=b"bytes", reply_message_id="<r1@forus.test>",
                        request=request, message=message)
        uow.executions.create(request)
        uow.mailboxes.set("INBOX", uidvalidity=7, last_seen_uid=99)
        uow.flush()
        raise RuntimeError("crash before commit")
    for model in (Message, Request, ThreadId, OutboxItem, Execution, AuditEntry):
        assert count(store, model) == 0, model.__tablename__
    with store.unit_of_work() as uow:
        assert uow.mailboxes.get("INBOX") is None


_KILLED_WORKER = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
from tests.integration.test_storage import decision
from reset_mailbot.adapters.db import Store, create_db_engine
store = Store(create_db_engine(sys.argv[1]))
with store.unit_of_work() as uow:
    m = uow.messages.record(decision("<kept@utrecht.nl>"), raw=b"1")
    uow.requests.create(decision("<kept@utrecht.nl>"), m)
with store.unit_of_work() as uow:
    m = uow.messages.record(decision("<lost@utrecht.nl>"), raw=b"2")
    uow.requests.create(decision("<lost@utrecht.nl>"), m)
    uow.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_inside_a_unit_of_work_keeps_what_was_committed(store: Store,
                                                               database_url: str) -> None:
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", _KILLED_WORKER, database_url, root],
                          check=False, capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()
    with store.unit_of_work() as uow:
        assert uow.messages.by_key("<kept@utrecht.nl>") is not None
        assert uow.messages.by_key("<lost@utrecht.nl>") is None
        assert len(queries.list_requests(uow)) == 1
    with store.unit_of_work() as uow:  # the killed writer's lock is gone
        uow.messages.record(decision("<lost@utrecht.nl>"), raw=b"2")


def test_messages_pending_move_after_a_crash_between_commit_and_move(store: Store) -> None:
    with store.unit_of_work() as uow:
        moved, _ = record_complete(uow, "<moved@utrecht.nl>")
        record_complete(uow, "<stuck@utrecht.nl>")
        uow.messages.record(decision("<later@utrecht.nl>", outcome=Outcome.DEFERRED), raw=b"d",
                           mailbox="INBOX", uidvalidity=7, uid=1)
        uow.messages.mark_moved(moved, "Processed")
    with store.unit_of_work() as uow:
        assert [m.message_key for m in uow.messages.pending_move("INBOX")] == [
            "<stuck@utrecht.nl>"
        ]
        row = uow.messages.by_key("<moved@utrecht.nl>")
        assert row is not None and row.folder_moved_to == "Processed" and row.moved_at == T0


# ------------------------------------------------------------- the full path


def test_an_execution_rolled_back_with_its_savepoint_is_created_again(store: Store) -> None:
    """A batch's message whose work is rolled back (savepoint) takes its execution with it; a
    later message of the batch that completes the same request gets a real one."""
    with store.unit_of_work() as uow:
        _, request = record_complete(uow, "<sp@utrecht.nl>")
        request_id = request.id
    with store.unit_of_work() as uow:
        request = uow.requests.get(request_id)
        assert request is not None
        with pytest.raises(RuntimeError), uow.savepoint():
            uow.executions.create(request)
            raise RuntimeError("this message broke")
        execution = uow.executions.create(request)
        assert execution in uow.session
    assert count(store, Execution) == 1


def test_decision_request_reply_and_execution_in_one_transaction(store: Store) -> None:
    with store.unit_of_work() as uow:
        _, request = record_complete(uow, "<full@utrecht.nl>", case="Z-42")
        assert request.state == "complete" and request.completed_at == T0
        assert request.id.startswith("R-") and len(request.id) == 10
        execution = uow.executions.create(request)
        assert uow.executions.create(request).id == execution.id  # one intent per key
        request_id = request.id
    with store.unit_of_work() as uow:
        full = queries.request_story(uow, request_id)
        assert full is not None
        assert [m.message_key for m in full.messages] == ["<full@utrecht.nl>"]
        assert full.messages[0].decision is not None
        assert full.messages[0].decision["request"]["case_reference"] == "Z-42"
        assert [e.idempotency_key for e in full.executions] == [f"reset-mailbot:{request_id}"]
        assert [a.event for a in full.audit] == ["request_created", "execution_queued"]

    [claim] = store.claim_due_executions(now=T0)
    assert claim.job().account_email == "resident@example.org"
    assert claim.job().requested_by == SENDER
    assert claim.source_message_id == "<full@utrecht.nl>"
    with store.unit_of_work() as uow:
        executing = uow.requests.get(request_id)
        assert executing is not None and executing.state == "executing"
        uow.executions.record_result(claim.id, ExecutionResult(
            status=ExecutionStatus.SUCCEEDED, code="reset"), now=T0 + timedelta(seconds=1))
        uow.outbox.queue(kind="confirmation", to_address=SENDER, subject="Re: 2FA reset",
                        body="Gedaan", rfc822=b"From: ...", reply_message_id="<c@forus.test>",
                        request=executing)
    with store.unit_of_work() as uow:
        done = queries.request_story(uow, request_id)
        assert done is not None
        assert done.state == "executed" and done.result_code == "reset"
        assert done.executed_at == T0 + timedelta(seconds=1) == done.closed_at
        assert done.executions[0].state == ExecutionState.SUCCEEDED
        events = [a.event for a in done.audit]
        assert events == ["request_created", "execution_queued", "state_changed",
                          "execution_started", "execution_succeeded", "state_changed",
                          "reply_queued"]
    assert store.claim_due_executions(now=T0 + timedelta(days=1)) == []


def test_execution_retry_goes_back_to_complete_with_capped_backoff(store: Store) -> None:
    with store.unit_of_work() as uow:
        _, request = record_complete(uow, "<retry@utrecht.nl>")
        uow.executions.create(request)
        request_id = request.id
    now = T0
    expected = [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    for attempt, delay in enumerate(expected, start=1):
        [claim] = store.claim_due_executions(now=now)
        assert claim.attempts == attempt
        with store.unit_of_work() as uow:
            execution = uow.executions.record_result(
                claim.id, ExecutionResult(status=ExecutionStatus.RETRY, code="http_503"), now=now)
            assert execution.next_attempt_at == now + timedelta(seconds=delay)
            request = uow.requests.get(request_id)
            assert request is not None and request.state == "complete"
        assert store.claim_due_executions(now=now + timedelta(seconds=delay - 1)) == []
        now += timedelta(seconds=delay)
    [claim] = store.claim_due_executions(now=now)
    with store.unit_of_work() as uow:
        uow.executions.record_result(claim.id, ExecutionResult(
            status=ExecutionStatus.FAILED, code="account_not_found"), now=now)
        request = uow.requests.get(request_id)
        assert request is not None and request.state == "execution_failed"


def test_late_execution_result_is_only_audited(store: Store) -> None:
    with store.unit_of_work() as uow:
        _, request = record_complete(uow, "<late@utrecht.nl>")
        uow.executions.create(request)
    [slow] = store.claim_due_executions(now=T0)
    [fast] = store.claim_due_executions(now=T0 + timedelta(minutes=11))  # lease expired
    assert fast.id == slow.id and fast.reclaimed and fast.attempts == 2
    ok = ExecutionResult(status=ExecutionStatus.SUCCEEDED, code="reset")
    with store.unit_of_work() as uow:
        uow.executions.record_result(fast.id, ok)
    with store.unit_of_work() as uow:
        uow.executions.record_result(slow.id, ok)
        assert [e.event for e in uow.audit_log.entries(event="execution_result_late")] == [
            "execution_result_late"
        ]


def test_only_complete_requests_execute(store: Store) -> None:
    with store.unit_of_work() as uow:
        _, gated = record_complete(uow, "<gate@utrecht.nl>")
        uow.requests.transition(gated, RequestState.AWAITING_APPROVAL)
        uow.executions.create(gated)
        gated_id = gated.id
    assert store.claim_due_executions(now=T0) == []
    with store.unit_of_work() as uow:
        request = uow.requests.get(gated_id)
        assert request is not None
        uow.requests.approve(request, by="Petra (Forus)")
    [claim] = store.claim_due_executions(now=T0)
    assert claim.approved_by == "Petra (Forus)"
    with store.unit_of_work() as uow:
        _, other = record_complete(uow, "<deny@utrecht.nl>")
        uow.requests.transition(other, RequestState.AWAITING_APPROVAL)
        uow.requests.deny(other, by="Karel", reason="onbekende medewerker")
        assert other.state == "denied" and other.denied_by == "Karel"
        with pytest.raises(InvalidTransition):
            uow.requests.transition(other, RequestState.EXECUTING)


# ------------------------------------------------------------------ claims


def _queue_replies(store: Store, n: int) -> None:
    with store.unit_of_work() as uow:
        for i in range(n):
            uow.outbox.queue(kind="incomplete", to_address=f"a{i}@utrecht.nl", subject="Re: x",
                            body="b", rfc822=f"bytes {i}".encode(),
                            reply_message_id=f"<reply-{i}@forus.test>")


def test_outbox_claim_lease_and_reclaim(store: Store) -> None:
    _queue_replies(store, 3)
    first = store.claim_due_outbox(now=T0, limit=2)
    assert [c.attempts for c in first] == [1, 1] and not any(c.reclaimed for c in first)
    second = store.claim_due_outbox(now=T0)
    assert len(second) == 1 and second[0].id not in {c.id for c in first}
    assert store.claim_due_outbox(now=T0 + timedelta(minutes=9)) == []
    with store.unit_of_work() as uow:
        assert uow.outbox.mark_sent(first[0].id, now=T0 + timedelta(seconds=2))
        assert not uow.outbox.mark_sent(first[0].id)  # idempotent
        with pytest.raises(LookupError):
            uow.outbox.mark_sent(10**6)
    reclaimed = store.claim_due_outbox(now=T0 + timedelta(minutes=10))
    assert sorted(c.id for c in reclaimed) == sorted([first[1].id, second[0].id])
    assert all(c.reclaimed and c.attempts == 2 for c in reclaimed)
    assert reclaimed[0].rfc822.startswith(b"bytes ")
    with store.unit_of_work() as uow:
        assert len(uow.audit_log.entries(event="reply_reclaimed")) == 2
        assert len(uow.audit_log.entries(event="reply_sent")) == 1
        sent = uow.outbox.get(first[0].id)
        assert sent.state == OutboxState.SENT and sent.sent_at == T0 + timedelta(seconds=2)


def test_outbox_backoff_and_giving_up(store: Store) -> None:
    store.max_outbox_attempts = 4
    _queue_replies(store, 1)
    now = T0
    for attempt, delay in enumerate([30, 60, 120], start=1):
        [claim] = store.claim_due_outbox(now=now)
        assert claim.attempts == attempt
        with store.unit_of_work() as uow:
            item = uow.outbox.mark_failed(claim.id, "421 try later", now=now)
            assert item.state == OutboxState.QUEUED
            assert item.next_attempt_at == now + timedelta(seconds=delay)
        assert store.claim_due_outbox(now=now + timedelta(seconds=delay - 1)) == []
        now += timedelta(seconds=delay)
    [claim] = store.claim_due_outbox(now=now)
    with store.unit_of_work() as uow:
        item = uow.outbox.mark_failed(claim.id, "421 try later", now=now)
        assert item.state == OutboxState.FAILED and item.last_error == "421 try later"
    assert store.claim_due_outbox(now=now + timedelta(days=1)) == []


def test_outbox_permanent_failure(store: Store) -> None:
    _queue_replies(store, 1)
    [claim] = store.claim_due_outbox(now=T0)
    with store.unit_of_work() as uow:
        assert uow.outbox.mark_failed(claim.id, "550 no such user",
                                      permanent=True).state == OutboxState.FAILED


def _race(claim: object, workers: int = 4) -> list[list[int]]:
    barrier = threading.Barrier(workers)
    results: list[list[int]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                results[i].extend(c.id for c in claim())  # type: ignore[operator]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_concurrent_outbox_claimers_never_get_the_same_row(store: Store) -> None:
    _queue_replies(store, 40)
    results = _race(lambda: store.claim_due_outbox(now=T0, limit=3))
    claimed = [i for r in results for i in r]
    assert len(claimed) == len(set(claimed)) == 40


def test_concurrent_execution_claimers_never_get_the_same_row(store: Store) -> None:
    with store.unit_of_work() as uow:
        for i in range(20):
            _, request = record_complete(uow, f"<exec-{i}@utrecht.nl>")
            uow.executions.create(request)
    results = _race(lambda: store.claim_due_executions(now=T0, limit=2))
    claimed = [i for r in results for i in r]
    assert len(claimed) == len(set(claimed)) == 20


# ------------------------------------------------------------------ threads


def test_thread_ids_are_recorded_once_whether_or_not_the_thread_was_loaded(
    store: Store,
) -> None:
    with store.unit_of_work() as uow:
        d = decision("<t1@utrecht.nl>", outcome=Outcome.INCOMPLETE, identity=False)
        request = uow.requests.create(d, uow.messages.record(d, raw=b"1"))
        request_id = request.id
    with store.unit_of_work() as uow:
        request = uow.requests.get(request_id)
        assert request is not None
        uow.requests.add_thread_id(request, "<t2@forus.test>")  # thread not loaded: one-row check
        uow.requests.add_thread_id(request, " <t2@forus.test> ")
        assert sorted(t.message_id for t in request.thread_ids) == [
            "<t1@utrecht.nl>", "<t2@forus.test>"]
        uow.requests.add_thread_id(request, "<t2@forus.test>")  # loaded now: checked in memory
        uow.requests.add_thread_id(request, "<t3@forus.test>")
    with store.unit_of_work() as uow:
        request = uow.requests.get(request_id)
        assert request is not None
        assert sorted(t.message_id for t in request.thread_ids) == [
            "<t1@utrecht.nl>", "<t2@forus.test>", "<t3@forus.test>"]
        found = uow.requests.for_thread(SENDER, ["<t3@forus.test>"])
        assert found is not None and found.id == request_id


def test_thread_lookup_and_merge(store: Store) -> None:
    with store.unit_of_work() as uow:
        d = decision("<first@utrecht.nl>", outcome=Outcome.INCOMPLETE, identity=False,
                     account="old@example.org",
                     missing_details={Item.IDENTITY_VERIFIED: MissingDetail.NOT_FOUND})
        message = uow.messages.record(d, raw=b"1")
        request = uow.requests.create(d, message)
        assert request.state == "incomplete" and request.missing == ["identity_verified"]
        uow.outbox.queue(kind="incomplete", to_address=SENDER, subject="Re: 2FA",
                        body="Wat ontbreekt", rfc822=b"r", request=request, message=message,
                        reply_message_id="<our-reply@forus.test>")
        request_id = request.id

    with store.unit_of_work() as uow:
        # Different sender in the same thread: not merged.
        assert uow.requests.for_thread("collega@utrecht.nl",
                                           ["<our-reply@forus.test>"]) is None
        # Unknown ids, and no ids at all.
        assert uow.requests.for_thread(SENDER, ["<nope@x>", None]) is None
        assert uow.requests.for_thread(SENDER, []) is None
        # By In-Reply-To (our reply) and by References (their first message); case of sender.
        found = uow.requests.for_thread("J.Jansen@Utrecht.nl", ["<our-reply@forus.test>"])
        assert found is not None and found.id == request_id
        found = uow.requests.for_thread(SENDER, ["<x@y>", "<first@utrecht.nl>"])
        assert found is not None and found.id == request_id

        reply = decision("<second@utrecht.nl>", outcome=Outcome.INCOMPLETE,
                         account="new@example.org", instructed=False,
                         in_reply_to="<our-reply@forus.test>",
                         missing_details={Item.RESET_INSTRUCTED: MissingDetail.NOT_FOUND})
        second = uow.messages.record(reply, raw=b"2")
        merged = uow.requests.merge(found, reply, second)
        assert merged.state == "complete"
        assert merged.account_email == "new@example.org"  # the new text wins
        assert merged.reset_instructed is True  # kept from the first message
        assert merged.missing == []

    with store.unit_of_work() as uow:
        # Complete requests are no longer open for merging, unless asked for any state.
        assert uow.requests.for_thread(SENDER, ["<second@utrecht.nl>"]) is None
        found = uow.requests.for_thread(SENDER, ["<second@utrecht.nl>"], states=None)
        assert found is not None and found.id == request_id
        with pytest.raises(InvalidTransition):
            uow.requests.merge(found, reply, second)
        full = queries.request_story(uow, request_id)
        assert full is not None
        assert [m.message_key for m in full.messages] == ["<first@utrecht.nl>",
                                                          "<second@utrecht.nl>"]
        assert {t.message_id for t in full.thread_ids} == {
            "<first@utrecht.nl>", "<our-reply@forus.test>", "<second@utrecht.nl>"}
        merge = next(a for a in full.audit if a.event == "request_merged")
        assert merge.data["before"]["account_email"] == "old@example.org"
        assert merge.data["after"]["account_email"] == "new@example.org"


# -------------------------------------------------------------------- audit


def test_audit_log_is_append_only(store: Store) -> None:
    with store.unit_of_work() as uow:
        first = uow.audit_log.append("daemon_started", actor="system", data={"version": "0.1.0"})
        uow.audit_log.append("note", actor="Petra", data={"text": "gebeld"})
    first_id = first.id  # assigned by the commit's flush
    with pytest.raises(AuditLogIsAppendOnly), store.unit_of_work() as uow:
        entry = uow.session.get(AuditEntry, first_id)
        assert entry is not None
        entry.data = {"version": "forged"}
        uow.flush()
    with pytest.raises(AuditLogIsAppendOnly), store.unit_of_work() as uow:
        entry = uow.session.get(AuditEntry, first_id)
        uow.session.delete(entry)
        uow.flush()
    with store.unit_of_work() as uow:
        entries = uow.audit_log.entries()
        assert [(e.event, e.actor, e.data) for e in entries] == [
            ("daemon_started", "system", {"version": "0.1.0"}),
            ("note", "Petra", {"text": "gebeld"}),
        ]
    public = [name for name in dir(UnitOfWork) if not name.startswith("_")]
    assert not [n for n in public if "audit" in n and n not in ("audit", "audit_entries")]


# ------------------------------------------------------------------ mailbox


def test_mailbox_state(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.mailboxes.get("INBOX") is None
        uow.mailboxes.set("INBOX", uidvalidity=100, last_seen_uid=10)
    with store.unit_of_work() as uow:
        state = uow.mailboxes.set("INBOX", uidvalidity=100, last_seen_uid=7)
        assert state.last_seen_uid == 10  # never goes back within one UIDVALIDITY
        state = uow.mailboxes.set("INBOX", uidvalidity=100, last_seen_uid=12)
        assert state.last_seen_uid == 12
    with store.unit_of_work() as uow:
        state = uow.mailboxes.set("INBOX", uidvalidity=200, last_seen_uid=0)
        assert (state.uidvalidity, state.last_seen_uid) == (200, 0)
        [event] = uow.audit_log.entries(event="uidvalidity_changed")
        assert event.data == {"mailbox": "INBOX", "old": 100, "new": 200,
                              "old_last_seen_uid": 12}


# -------------------------------------------------------------------- views


def test_list_requests_filters(store: Store) -> None:
    with store.unit_of_work() as uow:
        _, a = record_complete(uow, "<a@utrecht.nl>")
        a.deadline_at = T0 + timedelta(days=2)
        d = decision("<b@utrecht.nl>", outcome=Outcome.INCOMPLETE, identity=False)
        b = uow.requests.create(d, uow.messages.record(d, raw=b"b"), municipality="Eindhoven",
                               now=T0 + timedelta(hours=1))
        b.deadline_at = T0 + timedelta(hours=2)
    with store.unit_of_work() as uow:
        assert [r.id for r in queries.list_requests(uow)] == [b.id, a.id]  # newest first
        assert [r.id for r in queries.list_requests(uow, state="complete")] == [a.id]
        assert [r.id for r in queries.list_requests(uow, state=["complete", "incomplete"],
                                                    municipality="Eindhoven")] == [b.id]
        later = T0 + timedelta(minutes=30)
        assert [r.id for r in queries.list_requests(uow, since=later)] == [b.id]
        tomorrow = T0 + timedelta(days=1)
        assert [r.id for r in queries.list_requests(uow, overdue_at=tomorrow)] == [b.id]
        assert len(queries.list_requests(uow, limit=1)) == 1
        assert uow.requests.get("R-NOTHERE") is None
        assert uow.outbox.count_replies_to(SENDER, T0) == 0
        assert uow.requests.count_executed(T0 - timedelta(days=1), municipality="Utrecht") == 0


def test_rate_limit_counts(store: Store) -> None:
    with store.unit_of_work() as uow:
        for i in range(3):
            _, request = record_complete(uow, f"<n{i}@utrecht.nl>",
                                         account="Resident@Example.org")
            uow.outbox.queue(kind="incomplete", to_address=SENDER.upper(), subject="s",
                            body="b", rfc822=b"r", reply_message_id=f"<q{i}@forus.test>",
                            now=T0 + timedelta(minutes=i))
            if i < 2:
                uow.requests.transition(request, RequestState.EXECUTING)
                uow.requests.transition(request, RequestState.EXECUTED, now=T0 + timedelta(days=i))
    with store.unit_of_work() as uow:
        assert uow.outbox.count_replies_to(SENDER, T0 + timedelta(minutes=1)) == 2
        assert uow.requests.count_executed(T0, municipality="Utrecht") == 2
        assert uow.requests.count_executed(T0 + timedelta(hours=1),
                                  account_email="resident@example.org") == 1
        assert uow.requests.count_executed(T0, municipality="Eindhoven") == 0
