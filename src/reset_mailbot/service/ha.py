"""One poller at a time (issue #15): this daemon's heartbeat and its share of the leadership.

`Leadership.beat()` runs every `failover/5` seconds on a thread of its own (a busy scheduler
cannot delay it): it refreshes this instance's heartbeat - which keeps its claims its own - and,
on PostgreSQL, takes or renews the `poller` lease (adapters/db/instances.py). The leader reads
the mailbox and runs the jobs that must run once (SLA scan, retention, database gauges); every
instance sends replies and runs resets from the shared queues, claims keeping them apart.

A leader believes it leads only until its lease could have expired for the others, measured on
the monotonic clock from before its last successful renewal: a leader that was frozen (SIGSTOP,
a paused VM) finds on waking that its time has passed and stands by until a renewal succeeds,
so it never polls beside the standby that took over. SQLite deployments are one instance by
the file lock (adapters/db/instance_lock.py) and lead without a lease.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from reset_mailbot.adapters.db.instances import POLLER
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.logs import get_logger

log = get_logger("reset_mailbot.ha")

#: a leader stops believing it leads this long before its lease can expire for the others
#: (clock skew between hosts, the time a renewal takes)
SAFETY_MARGIN_SECONDS = 1.0


def new_instance_id() -> str:
    """`<host>:<pid>:<random>`: readable in logs, unique across restarts and hosts."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(3)}"


class Leadership:
    """This instance's heartbeat and whether it is the poller now."""

    def __init__(
        self, store: Store, instance_id: str, *, failover_seconds: float,
        use_lease: bool, version: str = "",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.instance_id = instance_id
        self.failover_seconds = failover_seconds
        self.use_lease = use_lease
        self.version = version
        self._monotonic = monotonic
        self._leading_until = float("inf") if not use_lease else 0.0
        self._last_beat: float | None = None
        self._reported = not use_lease  # what the last beat said (a frozen leader's was True)
        self.on_change: Callable[[bool], None] | None = None

    @property
    def interval_seconds(self) -> float:
        """How often to beat: five times per failover period."""
        return self.failover_seconds / 5

    @property
    def ttl(self) -> timedelta:
        """The lease's length: two thirds of the failover period, so a standby that checks
        every `interval_seconds` takes over within `failover_seconds` of the last renewal."""
        return timedelta(seconds=self.failover_seconds * 2 / 3)

    def lead_alone(self) -> None:
        """`run --once`: act now without a lease, beside a daemon or not (its claims carry no
        owner and expire by the lease; unique keys keep two pollers from deciding twice)."""
        self.use_lease = False
        self._leading_until = float("inf")
        self._reported = True

    def is_leader(self) -> bool:
        return self._monotonic() < self._leading_until

    def seconds_since_beat(self) -> float | None:
        """Since the last successful heartbeat (None before the first)."""
        if self._last_beat is None:
            return None
        return max(0.0, self._monotonic() - self._last_beat)

    def beat(self) -> bool:
        """Refresh the heartbeat, take or renew the lease; whether this instance leads now.
        A database error propagates (the caller logs it); the belief then simply runs out."""
        started = self._monotonic()
        with self.store.unit_of_work() as uow:
            uow.instances.beat(self.instance_id, version=self.version)
            held = (uow.instances.hold(POLLER, self.instance_id, self.ttl)
                    if self.use_lease else True)
        self._last_beat = self._monotonic()
        if self.use_lease:
            self._leading_until = (started + self.ttl.total_seconds() - SAFETY_MARGIN_SECONDS
                                   if held else 0.0)
        now = self.is_leader()
        if now != self._reported:
            self._reported = now
            log.info("leadership_acquired" if now else "leadership_lost",
                     failover_seconds=self.failover_seconds)
            if self.on_change is not None:
                self.on_change(now)
        return now

    def leave(self) -> None:
        """A clean stop: give the lease up at once (a standby takes over within one interval)
        and deregister; never raises."""
        self._leading_until = 0.0 if self.use_lease else self._leading_until
        try:
            with self.store.unit_of_work() as uow:
                uow.instances.leave(self.instance_id)
        except Exception as exc:  # the database is gone: the lease simply expires
            log.warning("leave_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    def run(self, stop: threading.Event) -> None:
        """Beat every `interval_seconds` until `stop`; errors are logged, never fatal."""
        while not stop.wait(self.interval_seconds):
            try:
                self.beat()
            except Exception as exc:
                log.warning("heartbeat_failed", error=f"{type(exc).__name__}: {exc}"[:300])
