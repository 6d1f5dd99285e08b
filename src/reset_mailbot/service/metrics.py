"""Prometheus metrics and /healthz, served by the daemon on `[metrics] listen`.

Why a registry per `Metrics` (not prometheus_client's global one): tests run several daemons in
one process, and a global registry refuses the second set of metric names. Why our own small
WSGI app instead of `start_http_server`: /healthz must answer on the same port as /metrics.

Event counters are moved by hooks the daemon passes to its workers (`observe_*`); state gauges
(requests by state, overdue requests, outbox length) are read from the database by the daemon's
`metrics` job, so they are right after a restart too; the poll age is computed at scrape time.
Metric names (all prefixed `reset_mailbot_`):

- `messages_total{outcome}`, `decision_reasons_total{outcome,reason}`: decided messages
- `processing_errors_total`: messages quarantined because processing broke
- `decision_seconds` (histogram): time to decide and record one message
- `replies_total{kind,result}`: result sent | retry | failed
- `executions_total{result,code}`: result succeeded | failed | retry | pending_human; resets a
  person records with `requests done` / `failed` count too (read from the database by the
  leader's `metrics` job)
- `polls_total{result}`: ok | error
- `sla_events_total{event}`: sla_warning | sla_breach
- `requests{state}`, `requests_overdue`, `outbox_length` (gauges from the database)
- `seconds_since_last_successful_poll`: since the daemon started while no poll succeeded yet
- `last_successful_poll_timestamp_seconds`: the same as a Unix time (the exporter convention)
- `leader`: 1 on the instance that reads the mailbox, 0 on a standby (issue #15)
- `build_info{version}`; the standard `process_*` and `python_info` series
No `_created` series are exported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    make_wsgi_app,
)

from reset_mailbot import __version__
from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.schema import utcnow
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.service.actions import MANUAL_RESET_CODE
from reset_mailbot.service.delivery import MANUAL_FAILED_CODE
from reset_mailbot.service.ha import Leadership

PREFIX = "reset_mailbot_"
HEALTHY_POLL_INTERVALS = 3

# `_created` series double every counter's series for a value no dashboard reads
disable_created_metrics()


def parse_listen(value: str | None) -> tuple[str, int] | None:
    """`host:port` (IPv6 as `[::1]:9464`); None or empty disables the endpoint."""
    if value is None or not value.strip():
        return None
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"[metrics] listen must be host:port, not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class Metrics:
    """The daemon's metrics in a private registry, plus the health rule for /healthz."""

    def __init__(
        self,
        *,
        poll_interval_seconds: float,
        last_successful_poll: Callable[[], datetime | None],
        clock: Callable[[], datetime] = utcnow,
        leadership: Leadership | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.poll_interval_seconds = poll_interval_seconds
        self._last_poll = last_successful_poll
        self._clock = clock
        self._leadership = leadership
        self._audit_mark: int | None = None  # audit rows up to here are counted
        self.started_at = clock()
        r = self.registry
        self.messages = Counter(f"{PREFIX}messages", "Messages decided, by outcome",
                                ["outcome"], registry=r)
        self.reasons = Counter(f"{PREFIX}decision_reasons",
                               "Reason codes of decided messages (one per reason)",
                               ["outcome", "reason"], registry=r)
        self.errors = Counter(f"{PREFIX}processing_errors",
                              "Messages quarantined because processing failed", registry=r)
        self.decision_seconds = Histogram(
            f"{PREFIX}decision_seconds", "Time to decide and record one message",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        self.replies = Counter(f"{PREFIX}replies", "Reply send attempts by kind and result",
                               ["kind", "result"], registry=r)
        self.executions = Counter(f"{PREFIX}executions", "Executor calls by result and code",
                                  ["result", "code"], registry=r)
        self.polls = Counter(f"{PREFIX}polls", "Inbox polls by result", ["result"], registry=r)
        self.sla_events = Counter(f"{PREFIX}sla_events", "SLA warnings and breaches flagged",
                                  ["event"], registry=r)
        self.requests = Gauge(f"{PREFIX}requests", "Requests by state (from the database)",
                              ["state"], registry=r)
        self.overdue = Gauge(f"{PREFIX}requests_overdue",
                             "Open requests past their deadline (from the database)", registry=r)
        self.outbox_length = Gauge(f"{PREFIX}outbox_length",
                                   "Replies queued or being sent (from the database)", registry=r)
        poll_age = Gauge(f"{PREFIX}seconds_since_last_successful_poll",
                         "Seconds since the inbox was last polled successfully", registry=r)
        poll_age.set_function(self.seconds_since_last_poll)
        # the exporter convention: alert on time() - ..._timestamp_seconds > N
        poll_at = Gauge(f"{PREFIX}last_successful_poll_timestamp_seconds",
                        "When the inbox was last polled successfully (Unix time; the start "
                        "while none has)", registry=r)
        poll_at.set_function(lambda: (self._last_poll() or self.started_at).timestamp())
        build = Gauge(f"{PREFIX}build_info", "The running version (always 1)", ["version"],
                      registry=r)
        build.labels(version=__version__).set(1)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_...
        PlatformCollector(registry=r)  # python_info
        leader = Gauge(f"{PREFIX}leader",
                       "1 while this instance reads the mailbox (the leader), 0 on standby",
                       registry=r)
        leader.set_function(lambda: 1.0 if self.leading() else 0.0)
        for state in RequestState:
            self.requests.labels(state=state.value)

    # ------------------------------------------------------------------ hooks

    def observe_decision(self, decision: Decision, seconds: float | None = None) -> None:
        outcome = decision.outcome.value
        self.messages.labels(outcome=outcome).inc()
        for reason in decision.reasons:
            self.reasons.labels(outcome=outcome, reason=reason.value).inc()
        if seconds is not None:
            self.decision_seconds.observe(seconds)

    def observe_reply(self, kind: str, result: str) -> None:
        self.replies.labels(kind=kind, result=result).inc()

    def observe_execution(self, result: str, code: str) -> None:
        self.executions.labels(result=result, code=code or "-").inc()

    def observe_poll(self, ok: bool, errors: int = 0) -> None:
        self.polls.labels(result="ok" if ok else "error").inc()
        if errors:
            self.errors.inc(errors)

    def observe_sla(self, warned: Iterable[str], breached: Iterable[str]) -> None:
        for event, ids in (("sla_warning", warned), ("sla_breach", breached)):
            count = len(list(ids))
            if count:
                self.sla_events.labels(event=event).inc(count)

    # --------------------------------------------------------------- database

    def refresh_from_db(self, store: Store, now: datetime | None = None) -> None:
        """Requests by state, overdue requests and outbox length, read in one transaction;
        and the manual resets recorded since the last refresh."""
        now = now or self._clock()
        with store.unit_of_work() as uow:
            read = queries.gauges(uow, now)
            manual = queries.manual_outcomes_since(uow, self._audit_mark)
        # resets people recorded with `requests done/failed` (another process): counted here
        self._audit_mark = manual.last_id
        if manual.done:
            self.executions.labels(result="succeeded", code=MANUAL_RESET_CODE).inc(manual.done)
        if manual.failed:
            self.executions.labels(result="failed", code=MANUAL_FAILED_CODE).inc(manual.failed)
        by_state = read.requests_by_state
        for state in {*(s.value for s in RequestState), *by_state}:
            self.requests.labels(state=state).set(by_state.get(state, 0))
        self.overdue.set(read.overdue)
        self.outbox_length.set(read.outbox_length)

    # ----------------------------------------------------------------- health

    def seconds_since_last_poll(self) -> float:
        last = self._last_poll() or self.started_at
        return max(0.0, (self._clock() - last).total_seconds())

    def leading(self) -> bool:
        return self._leadership is None or self._leadership.is_leader()

    def health(self) -> tuple[bool, str]:
        """The leader: healthy while the last successful poll (or the start) is within 3 poll
        intervals. A standby: healthy while its heartbeat reaches the database (it polls
        nothing; it must be able to take over)."""
        ship = self._leadership
        if ship is not None and not ship.is_leader():
            since = ship.seconds_since_beat()
            limit = ship.failover_seconds
            if since is None:
                return False, "standby: no heartbeat written yet"
            return since <= limit, (f"standby: last heartbeat {since:.1f}s ago "
                                    f"(limit {limit:.0f}s)")
        age = self.seconds_since_last_poll()
        limit = HEALTHY_POLL_INTERVALS * self.poll_interval_seconds
        polled = self._last_poll() is not None
        what = "last successful poll" if polled else "no successful poll since start"
        text = f"{what} {age:.1f}s ago (limit {limit:.0f}s)"
        return age <= limit, text


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not events
        pass


class MetricsServer:
    """/metrics (Prometheus text format) and /healthz on one port, in a background thread."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self._prometheus = make_wsgi_app(metrics.registry)
        self._server = make_server(host, port, self._app, server_class=_ThreadingWSGIServer,
                                   handler_class=_QuietHandler)
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok, text = self.metrics.health()
            status = "200 OK" if ok else "503 Service Unavailable"
            body = f"{'ok' if ok else 'unhealthy'}: {text}\n".encode()
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                    ("Content-Length", str(len(body)))])
            return [body]
        return self._prometheus(environ, start_response)  # type: ignore[no-any-return]

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
