"""The execution worker drains a backlog (issue #14): all that is due, bounded and rate-limited.

A real store (SQLite and PostgreSQL) with a backlog of complete requests, and an executor that
records when each call starts and how many run at once. `drain` must run every execution
exactly once in one call (not a handful per tick), never more than `concurrency` calls at once,
and never faster than `max_calls_per_second` allows.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.executors.base import ExecutionJob, ExecutionResult, ExecutionStatus
from reset_mailbot.domain.models import Decision, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.rules_loader import packaged_templates
from reset_mailbot.service.delivery import ExecutionWorker

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SUPPORT = "support@forus.test"


class RecordingExecutor:
    """Succeeds after `seconds`; remembers call starts, keys and the most calls at once."""

    name = "recording"

    def __init__(self, seconds: float = 0.01) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.starts: list[float] = []
        self.keys: list[str] = []
        self.in_flight = 0
        self.most_at_once = 0

    def execute(self, job: ExecutionJob) -> ExecutionResult:
        with self.lock:
            self.starts.append(time.monotonic())
            self.keys.append(job.idempotency_key)
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        time.sleep(self.seconds)
        with self.lock:
            self.in_flight -= 1
        return ExecutionResult(status=ExecutionStatus.SUCCEEDED, code="reset")

    def dry_run(self, job: ExecutionJob) -> ExecutionResult:  # pragma: no cover - not used
        raise NotImplementedError


def backlog(store: Store, n: int) -> list[str]:
    ids = []
    with store.unit_of_work() as uow:
        for i in range(n):
            d = Decision(
                message_id=f"<m{i}@utrecht.nl>", message_key=f"<m{i}@utrecht.nl>",
                outcome=Outcome.COMPLETE,
                sender=SenderInfo(address="j.devries@utrecht.nl", municipality="Utrecht"),
                request=ResetRequest(account_email=f"resident{i}@example.org",
                                     identity_verified=True, reset_instructed=True),
            )
            message = uow.messages.record(d, raw=b"x", now=T0)
            request = uow.requests.create(d, message, now=T0)
            uow.executions.create(request, now=T0)
            ids.append(request.id)
    return ids


def worker(store: Store, executor: RecordingExecutor, **kwargs: float) -> ExecutionWorker:
    return ExecutionWorker(store, executor, SUPPORT, packaged_templates(), clock=lambda: T0,
                           **kwargs)  # type: ignore[arg-type]


def test_drain_runs_the_whole_backlog_once_each_in_one_call(store: Store) -> None:
    ids = backlog(store, 45)
    executor = RecordingExecutor()
    batches: list[int] = []
    w = worker(store, executor, concurrency=4, max_calls_per_second=1000)
    w.on_batch = lambda: batches.append(len(executor.keys))
    assert w.drain() == 45
    assert sorted(executor.keys) == sorted(f"reset-mailbot:{i}" for i in ids)
    assert 1 < executor.most_at_once <= 4
    assert len(batches) >= 2  # the outbox is woken after every batch, not only at the end
    with store.unit_of_work() as uow:
        states = {uow.requests.get(i).state for i in ids}  # type: ignore[union-attr]
        kinds = [r.kind for r in queries.request_story(uow, ids[0]).outbox]  # type: ignore[union-attr]
    assert states == {"executed"}
    assert kinds == ["confirmation"]
    assert w.drain() == 0  # nothing is due any more


@pytest.mark.parametrize(("rate", "concurrency"), [(40.0, 4), (25.0, 1)])
def test_calls_never_exceed_the_configured_rate(store: Store, rate: float,
                                               concurrency: int) -> None:
    backlog(store, 30)
    executor = RecordingExecutor(seconds=0.0)
    assert worker(store, executor, concurrency=concurrency, max_calls_per_second=rate).drain() \
        == 30
    burst = max(1.0, min(rate, concurrency))
    starts = sorted(executor.starts)
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            # j - i + 1 calls started within starts[j] - first seconds
            assert j - i + 1 <= burst + (starts[j] - first) * rate + 1, (i, j)
