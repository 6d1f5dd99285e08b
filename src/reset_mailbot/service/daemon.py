"""The running service: APScheduler jobs, an IMAP IDLE watcher, signals, and `run --once`.

Jobs (APScheduler 3, BackgroundScheduler, all `max_instances=1, coalesce=True`):
- `poll`: decide and file every message in the inbox; also the safety net behind IDLE.
- `outbox`: send due replies, batch after batch while any are due; retries with capped
  backoff.
- `executions`: run due resets the same way (`[executor] concurrency` calls at once, at most
  `max_calls_per_second`).
A committed poll batch wakes `executions` and `outbox` at once, and each executed batch wakes
`outbox`; a job woken while it runs goes round once more instead of waiting for its interval.
- `sla`: flag requests near or past their deadline, once each, and queue the notice (sla.py).
- `metrics`: refresh the database gauges (metrics.py); `/metrics` and `/healthz` are served on
  `[metrics] listen` while the daemon runs.
- `retention`: daily purge (retention.py).
With several daemons on one PostgreSQL database (issue #15, service/ha.py) only the leader
polls (and watches IDLE) and runs `sla`, `metrics` and `retention`; every instance runs
`outbox` and `executions`, its claims carrying its instance id and kept alive by its heartbeat
thread. A standby serves /metrics and /healthz and takes over within `[ha] failover_seconds`.
The IDLE watcher keeps its own IMAP connection and, when the server announces new mail, moves
the `poll` job's next run to now; polling every `poll_interval_seconds` goes on regardless.
SIGTERM/SIGINT set a stop flag: the poll finishes the message in hand, the scheduler waits for
running jobs, and the process exits 0.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.executors.base import Executor
from reset_mailbot.adapters.imap import Mailbox, MailboxAuthError, MailboxError
from reset_mailbot.adapters.smtp import SmtpSender
from reset_mailbot.config import RetentionSettings, SlaSettings
from reset_mailbot.domain.backoff import Backoff
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.logs import get_logger, set_instance
from reset_mailbot.service.delivery import ExecutionWorker, OutboxWorker
from reset_mailbot.service.filing import PollStats
from reset_mailbot.service.ha import Leadership, new_instance_id
from reset_mailbot.service.inbox import InboxProcessor
from reset_mailbot.service.inbox_policy import InboxPolicy
from reset_mailbot.service.metrics import Metrics, MetricsServer, parse_listen
from reset_mailbot.service.sla import SlaReport, check_sla

log = get_logger("reset_mailbot.daemon")

DELIVERY_INTERVAL_SECONDS = 15.0
# mailbox reconnects: 2 s, 4 s, ... 5 min, with 10 % jitter so that two daemons drift apart
RECONNECT_BACKOFF = Backoff(timedelta(seconds=2), timedelta(seconds=300), jitter=0.1)
SLA_INTERVAL_SECONDS = 300.0
METRICS_INTERVAL_SECONDS = 15.0
RETENTION_INTERVAL_SECONDS = 24 * 3600.0
FORGET_INSTANCES_AFTER = timedelta(days=7)


@dataclass
class Health:
    """What /healthz and the metrics report about the poller."""

    last_successful_poll: datetime | None = None
    consecutive_failures: int = 0
    polls: int = 0


@dataclass
class OnceReport:
    poll: PollStats = field(default_factory=PollStats)
    executions: int = 0
    replies: int = 0
    sla: SlaReport | None = None


@dataclass
class DaemonParts:
    """The finished parts a daemon runs with, wired from configuration by
    `bootstrap.build_daemon` (the composition root): the service never reads the configuration
    file nor builds an adapter itself."""

    store: Store  # schema already checked (or upgraded) by the bootstrap
    context: DecisionContext
    policy: InboxPolicy
    open_mailbox: Callable[[], Mailbox]  # one connection polls, another waits in IDLE
    smtp: SmtpSender
    executor: Executor | None  # None: the manual executor (a person resets)
    executor_kind: str
    max_attempts: int
    poll_interval_seconds: float
    idle: bool
    sla: SlaSettings
    retention: RetentionSettings
    metrics_listen: str | None
    executor_concurrency: int = 4  # [executor] concurrency
    executor_max_calls_per_second: float = 20.0  # [executor] max_calls_per_second
    failover_seconds: float = 15.0  # [ha] failover_seconds
    instance_id: str | None = None  # [ha] instance_id; default: host:pid:random
    use_lease: bool = False  # PostgreSQL: several daemons share the database (service/ha.py)
    version: str = ""


class Daemon:
    """Everything `reset-mailbot run` needs, from finished parts (see `DaemonParts`)."""

    def __init__(self, parts: DaemonParts) -> None:
        self.parts = parts
        self.store = parts.store
        self.health = Health()
        self.leadership = Leadership(
            parts.store, parts.instance_id or new_instance_id(),
            failover_seconds=parts.failover_seconds, use_lease=parts.use_lease,
            version=parts.version,
        )
        self.leadership.on_change = self._leadership_changed
        self.metrics = Metrics(
            poll_interval_seconds=parts.poll_interval_seconds,
            last_successful_poll=lambda: self.health.last_successful_poll,
            leadership=self.leadership,
        )
        self.metrics_server: MetricsServer | None = None
        self.processor = InboxProcessor(
            self.store, parts.context, parts.policy, on_decision=self.metrics.observe_decision,
            on_commit=lambda: self._wake("executions", "outbox"),
        )
        self.mailbox = parts.open_mailbox()
        self.outbox = OutboxWorker(self.store, parts.smtp, parts.policy.support_address)
        self.outbox.on_result = self.metrics.observe_reply
        self.executions = (
            ExecutionWorker(
                self.store, parts.executor, parts.policy.support_address,
                parts.context.rules.templates, max_attempts=parts.max_attempts,
                concurrency=parts.executor_concurrency,
                max_calls_per_second=parts.executor_max_calls_per_second,
            )
            if parts.executor is not None
            else None
        )
        if self.executions is not None:
            self.executions.on_result = self.metrics.observe_execution
            self.executions.on_batch = lambda: self._wake("outbox")  # confirmations queued
        self.stop = threading.Event()
        self._wake_lock = threading.Lock()
        self._busy: set[str] = set()
        self._due = {"executions": threading.Event(), "outbox": threading.Event()}
        self.scheduler: BackgroundScheduler | None = None
        self._folders_ready = False

    # ----------------------------------------------------------------- jobs

    def poll(self) -> PollStats | None:
        """One pass over the inbox; connection problems reschedule with capped backoff. A
        standby does not poll (and drops a connection it held as the leader)."""
        if not self.leadership.is_leader():
            if self.mailbox.connected:
                self.mailbox.close()
            return None
        try:
            if not self.mailbox.connected:
                self.mailbox.connect()
                self._folders_ready = False
            if not self._folders_ready:
                self.mailbox.ensure_folders()
                self._folders_ready = True
            stats = self.processor.process_mailbox(self.mailbox, self.stop)
        except MailboxError as exc:
            self.health.consecutive_failures += 1
            self.metrics.observe_poll(False)
            self.mailbox.close()
            delay = RECONNECT_BACKOFF.seconds(self.health.consecutive_failures)
            log.warning(
                "imap_reconnect", error=str(exc)[:300], attempt=self.health.consecutive_failures,
                retry_in_seconds=round(delay, 1), auth=isinstance(exc, MailboxAuthError),
            )
            if self.scheduler is not None and not self.stop.is_set():
                self.scheduler.modify_job(
                    "poll", next_run_time=datetime.now(UTC) + timedelta(seconds=delay)
                )
            return None
        self.health.consecutive_failures = 0
        self.health.last_successful_poll = datetime.now(UTC)
        self.health.polls += 1
        self.metrics.observe_poll(True, stats.errors)
        # a poll that found nothing new is routine: debug, or it would be half the log
        quiet = not (stats.decided or stats.moved or stats.errors)
        counts = {"seen": stats.seen, "decided": stats.decided, "moved": stats.moved,
                  "skipped": stats.skipped, "errors": stats.errors}
        if quiet:
            log.debug("poll_done", **counts)
        else:
            log.info("poll_done", **counts)
        if stats.decided:
            # new replies or executions may be due now: do not wait for their interval
            self._wake("executions", "outbox")
        return stats

    def _wake(self, *jobs: str) -> None:
        """Run `jobs` now; a job that is running goes round once more when it is done."""
        if self.scheduler is None or self.stop.is_set():
            return
        for job in jobs:
            with self._wake_lock:
                if job in self._due:
                    self._due[job].set()
                if job not in self._busy:
                    # JobLookupError: woken before the scheduler has the job, or after
                    with contextlib.suppress(JobLookupError):
                        self.scheduler.modify_job(job, next_run_time=datetime.now(UTC))

    def _drain_job(self, job: str, work: Callable[[], int]) -> int:
        """`work` until it was not woken during its last round (see `_wake`)."""
        due = self._due[job]
        with self._wake_lock:
            self._busy.add(job)
        total = 0
        try:
            while not self.stop.is_set():
                due.clear()
                total += work()
                if not due.is_set():
                    break
        except Exception as exc:  # e.g. the database went away: the next run tries again
            log.error("job_failed", job=job, error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            with self._wake_lock:
                self._busy.discard(job)
                # woken after the last round looked: run again now rather than at the interval
                if due.is_set() and self.scheduler is not None and not self.stop.is_set():
                    self.scheduler.modify_job(job, next_run_time=datetime.now(UTC))
        return total

    def deliver(self) -> int:
        return self._drain_job("outbox", lambda: self.outbox.drain(self.stop))

    def execute(self) -> int:
        executions = self.executions
        if executions is None:
            return 0
        return self._drain_job("executions", lambda: executions.drain(self.stop))

    def check_sla(self) -> SlaReport | None:
        """Flag requests near or past their deadline (once each); wake the outbox for notices.
        The leader's job: one scan, one notice per request, however many instances run."""
        if not self.leadership.is_leader():
            return None
        try:
            report = check_sla(self.store, self.parts.sla, datetime.now(UTC),
                               templates=self.parts.context.rules.templates,
                               from_address=self.parts.policy.support_address)
        except Exception as exc:  # the database went away: the next run tries again
            log.error("job_failed", job="sla", error=f"{type(exc).__name__}: {exc}"[:300])
            return None
        self.metrics.observe_sla(report.warned, report.breached)
        if report.notices:
            self._wake("outbox")
        return report

    def refresh_metrics(self) -> None:
        """The database gauges; the leader's job (the figures are the same from any instance)."""
        if not self.leadership.is_leader():
            return
        try:
            self.metrics.refresh_from_db(self.store)
        except Exception as exc:
            log.error("job_failed", job="metrics", error=f"{type(exc).__name__}: {exc}"[:300])

    def purge(self) -> None:
        """The daily retention run (AVG/GDPR): raw bytes and then personal data age out; and
        the rows of instances silent for a week (killed ones never deregister)."""
        from reset_mailbot.service import retention

        if not self.leadership.is_leader():
            return
        now = datetime.now(UTC)
        try:
            retention.purge(self.store, self.parts.retention, now)
            with self.store.unit_of_work() as uow:
                uow.instances.forget_older_than(now - FORGET_INSTANCES_AFTER)
        except Exception as exc:
            log.error("job_failed", job="retention", error=f"{type(exc).__name__}: {exc}"[:300])

    def _leadership_changed(self, leading: bool) -> None:
        """A new leader polls, scans and refreshes at once instead of at the next interval."""
        if leading:
            self._wake("poll", "sla", "metrics")

    def _start_metrics_server(self) -> None:
        """Serve /metrics and /healthz; a busy port is logged, never fatal to the daemon."""
        value = self.parts.metrics_listen
        try:
            listen = parse_listen(value)
            if listen is None:
                return
            self.metrics_server = MetricsServer(self.metrics, *listen).start()
        except (OSError, ValueError) as exc:
            log.error("metrics_unavailable", listen=value, error=str(exc))
            return
        log.info("metrics_listening", host=listen[0], port=self.metrics_server.port)

    # ----------------------------------------------------------------- modes

    def run_once(self) -> OnceReport:
        """Process the inbox, then drive executions and replies until nothing more is due now."""
        report = OnceReport()
        self.leadership.lead_alone()
        try:
            self.mailbox.connect()
            self.mailbox.ensure_folders()
            report.poll = self.processor.process_mailbox(self.mailbox, self.stop)
        finally:
            self.mailbox.close()
        report.sla = self.check_sla()
        # Each round claims what is due now; a claimed row is either finished or rescheduled
        # into the future, so the loop ends once nothing is due any more.
        while True:
            executed = self.execute()
            sent = self.deliver()
            report.executions += executed
            report.replies += sent
            if executed == 0 and sent == 0:
                return report

    def run_forever(self) -> None:
        poll_every = self.parts.poll_interval_seconds
        scheduler = BackgroundScheduler(timezone=UTC)
        now = datetime.now(UTC)
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        scheduler.add_job(self.poll, "interval", seconds=poll_every, id="poll",
                          next_run_time=now, **common)
        scheduler.add_job(self.deliver, "interval", seconds=DELIVERY_INTERVAL_SECONDS,
                          id="outbox", next_run_time=now, **common)
        scheduler.add_job(self.execute, "interval", seconds=DELIVERY_INTERVAL_SECONDS,
                          id="executions", next_run_time=now, **common)
        scheduler.add_job(self.check_sla, "interval", seconds=SLA_INTERVAL_SECONDS, id="sla",
                          next_run_time=now, **common)
        scheduler.add_job(self.refresh_metrics, "interval", seconds=METRICS_INTERVAL_SECONDS,
                          id="metrics", next_run_time=now, **common)
        scheduler.add_job(self.purge, "interval", seconds=RETENTION_INTERVAL_SECONDS,
                          id="retention", next_run_time=now + timedelta(minutes=1), **common)
        self.scheduler = scheduler
        watcher = None
        if self.parts.idle:
            watcher = threading.Thread(target=self._watch_idle, name="imap-idle", daemon=True)
        self._install_signal_handlers()
        leadership = self.leadership
        set_instance(leadership.instance_id)
        leadership.beat()  # registered before any claim carries the id
        self.store.instance_id = leadership.instance_id
        heart = threading.Thread(target=leadership.run, args=(self.stop,), name="heartbeat",
                                 daemon=True)
        log.info("daemon_started", poll_interval_seconds=poll_every, idle=bool(watcher),
                 executor=self.parts.executor_kind, leader=leadership.is_leader(),
                 failover_seconds=leadership.failover_seconds if self.parts.use_lease else None)
        self._start_metrics_server()
        heart.start()
        scheduler.start()
        if watcher is not None:
            watcher.start()
        try:
            while not self.stop.wait(1.0):
                pass
        finally:
            log.info("daemon_stopping")
            scheduler.shutdown(wait=True)
            heart.join(timeout=5)
            leadership.leave()  # after the jobs: nothing is claimed any more
            if self.metrics_server is not None:
                self.metrics_server.stop()
            if watcher is not None:
                watcher.join(timeout=5)
            self.mailbox.close()
            log.info("daemon_stopped")

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: object) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            self.stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handle)
            signal.signal(signal.SIGINT, handle)

    def _watch_idle(self) -> None:
        """Wake the poll job when IDLE reports new mail; reconnect with capped backoff.

        IDLE reports only what arrives while it watches: mail that came while the connection
        was down (a server restart, an expired session) would wait for the next poll interval,
        so every reconnect after a failure wakes the poll once."""
        failures = 0
        missed = False  # the connection was down: mail may have arrived unseen
        watcher: Mailbox = self.parts.open_mailbox()
        while not self.stop.is_set():
            if not self.leadership.is_leader():  # a standby holds no IMAP connection
                watcher.close()
                self.stop.wait(self.leadership.interval_seconds)
                continue
            try:
                if not watcher.connected:
                    watcher.connect()
                    watcher.select_inbox()
                    if missed and self.scheduler is not None and not self.stop.is_set():
                        self._wake("poll")
                    missed = False
                changed = watcher.wait_for_change(
                    self.parts.poll_interval_seconds, stop=self.stop
                )
                failures = 0
                if changed and self.scheduler is not None and not self.stop.is_set():
                    self.scheduler.modify_job("poll", next_run_time=datetime.now(UTC))
            except MailboxError as exc:
                failures += 1
                missed = True
                watcher.close()
                delay = RECONNECT_BACKOFF.seconds(failures)
                log.warning("imap_reconnect", connection="idle", error=str(exc)[:300],
                            attempt=failures, retry_in_seconds=round(delay, 1))
                self.stop.wait(delay)
        watcher.close()
