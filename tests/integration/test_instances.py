"""Heartbeats, the leader lease and claims with owners (issue #15), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.instances import POLLER
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.service.ha import Leadership
from tests.integration.test_storage import _queue_replies, record_complete

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)


def _hold(store: Store, who: str, now: datetime) -> bool:
    with store.unit_of_work() as uow:
        return uow.instances.hold(POLLER, who, TTL, now=now)


def test_one_holder_at_a_time_and_a_takeover_only_after_expiry(store: Store) -> None:
    assert _hold(store, "a", T0)
    assert not _hold(store, "b", T0 + timedelta(seconds=1))
    assert _hold(store, "a", T0 + timedelta(seconds=5))  # renewed until T0 + 15 s
    assert not _hold(store, "b", T0 + timedelta(seconds=14))
    assert _hold(store, "b", T0 + timedelta(seconds=15))  # a stopped renewing: b takes over
    assert not _hold(store, "a", T0 + timedelta(seconds=16))  # a woke up: it is not the leader
    with store.unit_of_work() as uow:
        lease = uow.instances.lease()
        assert lease is not None and lease.holder == "b"
        uow.instances.release(POLLER, "b")
    assert _hold(store, "a", T0 + timedelta(seconds=17))  # released: no wait


def test_racing_standbys_get_one_winner(database_url: str) -> None:
    """Eight threads, each its own connection, all finding no lease or an expired one."""
    from reset_mailbot.adapters.db import migrate

    migrate.upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        store = Store(engine)
        for round_start in (T0, T0 + timedelta(minutes=1)):  # first INSERT, then UPDATE race
            won: list[str] = []
            barrier = threading.Barrier(8)

            def contend(who: str, at: datetime = round_start,
                        barrier: threading.Barrier = barrier, won: list[str] = won) -> None:
                barrier.wait()
                if _hold(store, who, at):
                    won.append(who)

            threads = [threading.Thread(target=contend, args=(f"i{n}",)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(won) == 1, won
    finally:
        engine.dispose()


def test_a_silent_owner_loses_its_claims_after_the_claim_timeout(store: Store) -> None:
    store.claim_timeout = timedelta(seconds=30)
    with store.unit_of_work() as uow:
        uow.instances.beat("a", now=T0)
        uow.instances.beat("b", now=T0)
        _, request = record_complete(uow, "<owned@utrecht.nl>")
        uow.executions.create(request)
    _queue_replies(store, 1)
    store.instance_id = "a"
    [execution] = store.claim_due_executions(now=T0)
    [reply] = store.claim_due_outbox(now=T0)
    store.instance_id = "b"
    later = T0 + timedelta(seconds=25)
    with store.unit_of_work() as uow:
        uow.instances.beat("a", now=later)  # a is alive: its claims stay its own
        uow.instances.beat("b", now=later)
    assert store.claim_due_executions(now=later + timedelta(seconds=29)) == []
    assert store.claim_due_outbox(now=later + timedelta(seconds=29)) == []
    silent = later + timedelta(seconds=31)  # a has not beaten for 31 s
    [taken] = store.claim_due_executions(now=silent)
    [resent] = store.claim_due_outbox(now=silent)
    assert (taken.id, taken.reclaimed, taken.attempts) == (execution.id, True, 2)
    assert taken.idempotency_key == execution.idempotency_key  # the same reset at the executor
    assert (resent.id, resent.reclaimed) == (reply.id, True)
    with store.unit_of_work() as uow:
        [event] = uow.audit_log.entries(event="execution_reclaimed")
        assert event.data["instance"] == "b"


def test_claims_without_an_owner_keep_the_lease(store: Store) -> None:
    """`run --once` and the CLI claim without an instance: only the 10-minute lease frees them
    (no heartbeat says whether they are alive)."""
    with store.unit_of_work() as uow:
        _, request = record_complete(uow, "<cli@utrecht.nl>")
        uow.executions.create(request)
    [claim] = store.claim_due_executions(now=T0)
    assert store.claim_due_executions(now=T0 + timedelta(minutes=9)) == []
    [again] = store.claim_due_executions(now=T0 + timedelta(minutes=11))
    assert again.id == claim.id and again.reclaimed


def test_a_cleanly_stopped_instance_frees_the_lease_at_once(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.instances.beat("a", now=T0)
    assert _hold(store, "a", T0)
    with store.unit_of_work() as uow:
        uow.instances.leave("a")
        assert uow.instances.all() == []
    assert _hold(store, "b", T0 + timedelta(seconds=1))


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_leadership_fails_over_and_a_frozen_leader_stands_down(database_url: str) -> None:
    """Two daemons' Leadership objects on one database, with the wall clock real and the
    monotonic clocks under test control: the first leads; when it stops beating the second
    takes over once the lease expires; the first, woken, does not believe it leads."""
    from reset_mailbot.adapters.db import migrate

    migrate.upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        clock_a, clock_b = _Clock(), _Clock()
        a = Leadership(Store(engine), "a", failover_seconds=3.0, use_lease=True,
                       monotonic=clock_a)
        b = Leadership(Store(engine), "b", failover_seconds=3.0, use_lease=True,
                       monotonic=clock_b)
        changes: list[tuple[str, bool]] = []
        a.on_change = lambda leading: changes.append(("a", leading))
        b.on_change = lambda leading: changes.append(("b", leading))
        assert a.beat() and not b.beat()
        assert a.is_leader() and not b.is_leader()
        clock_a.now += 5.0  # a was frozen for longer than its lease: it no longer believes
        assert not a.is_leader()
        threading.Event().wait(2.1)  # the lease (2 s) expires in the database
        assert b.beat() and b.is_leader()
        assert not a.beat()  # a woke up: the lease is b's
        assert changes == [("a", True), ("b", True), ("a", False)]  # a says it stood down
        b.leave()
        assert a.beat()  # released on a clean stop: no wait
        with Store(engine).unit_of_work() as uow:
            assert [(i.id, i.leader) for i in uow.instances.all()] == [("a", True)]
    finally:
        engine.dispose()


def test_sqlite_deployments_lead_without_a_lease(tmp_path: object) -> None:
    from pathlib import Path

    from reset_mailbot.adapters.db import migrate

    url = f"sqlite:///{Path(str(tmp_path)) / 'one.db'}"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    try:
        solo = Leadership(Store(engine), "solo", failover_seconds=15.0, use_lease=False)
        assert solo.is_leader()  # before any beat: a single instance always polls
        assert solo.beat() and solo.is_leader()
        with Store(engine).unit_of_work() as uow:
            assert uow.instances.lease() is None
            assert [i.id for i in uow.instances.all()] == ["solo"]
    finally:
        engine.dispose()


def test_reset_limits_hold_with_two_instances_deciding_at_once(postgres_url: str) -> None:
    """Two transactions (two instances) make a complete request for one municipality at the
    same moment, with a limit of one reset per day: without the lock both counted zero."""
    from reset_mailbot.adapters.db import migrate
    from reset_mailbot.service.limits import ResetLimits, hold_reason

    migrate.upgrade(postgres_url)
    engine = create_db_engine(postgres_url)
    limits = ResetLimits(per_municipality_per_day=1, per_account_per_30_days=5)
    held: list[bool] = []
    barrier = threading.Barrier(2)
    try:
        store = Store(engine)

        def decide(n: int) -> None:
            with store.unit_of_work() as uow:
                _, request = record_complete(uow, f"<limit-{n}@utrecht.nl>",
                                             account=f"resident{n}@example.org")
                uow.flush()
                barrier.wait()  # both inside their transactions before either counts
                hold = hold_reason(uow, request, limits, datetime.now(UTC))
                if hold is None:
                    uow.executions.create(request)
                held.append(hold is not None)

        threads = [threading.Thread(target=decide, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(held) == [False, True]  # one reset, one held for approval
    finally:
        engine.dispose()


def test_forgotten_instances_leave_their_claims_to_others(store: Store) -> None:
    """Retention forgets instances silent for a week (killed ones never deregister); a claim of
    a forgotten instance is as free as one of a silent instance."""
    with store.unit_of_work() as uow:
        uow.instances.beat("gone", now=T0)
        uow.instances.beat("alive", now=T0 + timedelta(days=8))
        _, request = record_complete(uow, "<forgotten@utrecht.nl>")
        uow.executions.create(request)
    store.instance_id = "gone"
    [claim] = store.claim_due_executions(now=T0)
    with store.unit_of_work() as uow:
        assert uow.instances.forget_older_than(T0 + timedelta(days=7)) == 1
        assert [i.id for i in uow.instances.all()] == ["alive"]
    store.instance_id = "alive"
    [taken] = store.claim_due_executions(now=T0 + timedelta(seconds=5))  # no heartbeat left
    assert (taken.id, taken.reclaimed) == (claim.id, True)
