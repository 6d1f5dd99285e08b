"""Several daemons on one database (issue #15): heartbeats and the leader lease.

Every daemon registers under an instance id ("host:pid:random") and refreshes `heartbeat_at`
every few seconds. The claims it takes on executions and replies carry that id
(`claimed_by`), and a claim whose owner has not beaten for `[ha] claim_timeout_seconds` is
claimable again (executions.py, outbox.py): a killed instance's work moves on in seconds,
where a fixed lease made it wait ten minutes.

Leadership is a lease row (`leases.name = 'poller'`), not a PostgreSQL advisory lock. Why: an
advisory lock is released when the holder's connection closes, which covers a dead process
but not a hung one (SIGSTOP, a frozen VM keeps its TCP connection, and the lock, for as long as
the kernel keeps the socket); taking it over would need `pg_terminate_backend` rights. A lease
that the holder must renew covers both the same way, works on every database, and bounds the
failover by the lease's length: the holder renews it every `failover/5` seconds for
`failover*2/3` seconds; a standby that finds it expired takes it with one conditional UPDATE
(one winner, whatever the number of standbys). The clocks that stamp heartbeats and leases are
the hosts' own: they must agree within a second or two (NTP), as they already must for
`Date:` headers and SLA deadlines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reset_mailbot.adapters.db.schema import Instance, Lease

POLLER = "poller"


def owner_gone(claimed_by: ColumnElement[str | None], now: datetime,
               timeout: timedelta) -> ColumnElement[bool]:
    """SQL: the row was claimed by an instance that has not beaten since `now - timeout`
    (killed, hung, or forgotten): its claim may be taken over."""
    alive = exists(select(Instance.id).where(Instance.id == claimed_by,
                                             Instance.heartbeat_at > now - timeout))
    return and_(claimed_by.is_not(None), ~alive)


@dataclass(frozen=True)
class InstanceView:
    id: str
    started_at: datetime
    heartbeat_at: datetime
    version: str
    leader: bool


@dataclass(frozen=True)
class LeaseView:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


class InstanceStore:
    """Heartbeats and leases, in the caller's transaction."""

    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.session = session
        self._clock = clock

    def beat(self, instance_id: str, *, version: str = "", now: datetime | None = None) -> None:
        """Register `instance_id` or refresh its heartbeat."""
        now = now or self._clock()
        row = self.session.get(Instance, instance_id)
        if row is None:
            self.session.add(Instance(id=instance_id, started_at=now, heartbeat_at=now,
                                      version=version[:64]))
        else:
            row.heartbeat_at = now

    def leave(self, instance_id: str) -> None:
        """A clean stop: the instance and its leases go at once (its claims are finished)."""
        self.session.execute(delete(Lease).where(Lease.holder == instance_id))
        self.session.execute(delete(Instance).where(Instance.id == instance_id))

    def hold(self, name: str, instance_id: str, ttl: timedelta,
             *, now: datetime | None = None) -> bool:
        """Take or renew lease `name` for `ttl`; False when another live holder has it.

        Renewal and takeover are one conditional UPDATE each, so two standbys finding the same
        expired lease cannot both win; the first holder ever is an INSERT, and the loser of
        that race gets an IntegrityError, i.e. False."""
        now = now or self._clock()
        expires = now + ttl
        renewed = self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == instance_id)
            .values(expires_at=expires).execution_options(synchronize_session=False))
        if renewed.rowcount:  # type: ignore[attr-defined]
            return True
        taken = self.session.execute(
            update(Lease).where(Lease.name == name, Lease.expires_at <= now)
            .values(holder=instance_id, acquired_at=now, expires_at=expires)
            .execution_options(synchronize_session=False))
        if taken.rowcount:  # type: ignore[attr-defined]
            return True
        if self.session.get(Lease, name) is not None:
            return False
        try:
            with self.session.begin_nested():
                self.session.add(Lease(name=name, holder=instance_id, acquired_at=now,
                                       expires_at=expires))
        except IntegrityError:
            return False
        return True

    def release(self, name: str, instance_id: str) -> None:
        self.session.execute(delete(Lease).where(Lease.name == name,
                                                 Lease.holder == instance_id))

    def lease(self, name: str = POLLER) -> LeaseView | None:
        row = self.session.get(Lease, name)
        if row is None:
            return None
        return LeaseView(row.name, row.holder, row.acquired_at, row.expires_at)

    def all(self) -> list[InstanceView]:
        """Every registered instance, newest heartbeat first, with the current leader marked."""
        lease = self.lease()
        now = self._clock()
        leader = lease.holder if lease is not None and lease.expires_at > now else None
        rows = self.session.scalars(select(Instance).order_by(Instance.heartbeat_at.desc()))
        return [InstanceView(r.id, r.started_at, r.heartbeat_at, r.version, r.id == leader)
                for r in rows]

    def forget_older_than(self, before: datetime) -> int:
        """Rows of instances silent since `before` (killed ones never leave): housekeeping."""
        result = self.session.execute(
            delete(Instance).where(Instance.heartbeat_at < before)
            .execution_options(synchronize_session=False))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
