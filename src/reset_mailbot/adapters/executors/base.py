"""The executor interface every way of resetting 2FA implements.

The service records an execution intent (with its idempotency key) in the database before calling
`execute`, so an executor must treat a repeated call with the same key as the same reset: report
success again, never reset twice. `dry_run` answers the same question without changing anything,
so support can see what an approval would do before giving it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from reset_mailbot.domain.lifecycle import ExecutionStatus

__all__ = ["ExecutionJob", "ExecutionResult", "ExecutionStatus", "Executor"]


class ExecutionJob(BaseModel):
    """One reset to carry out. `idempotency_key` is stable across retries of the same request."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    idempotency_key: str
    account_email: str
    municipality: str
    requested_by: str  # the authenticated sender's address
    case_reference: str | None = None
    message_id: str | None = None
    approved_by: str | None = None
    # For executors that pass the requester on (the HTTP contract's requested_by.name and
    # source.received_at); optional so executors that do not need them are unaffected.
    requested_by_name: str | None = None
    received_at: datetime | None = None  # of the request's latest message


class ExecutionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: ExecutionStatus
    code: str  # stable: reset | already_reset | account_not_found | ambiguous_account | ...
    detail: str = ""


class Executor(Protocol):
    name: str

    def execute(self, job: ExecutionJob) -> ExecutionResult:
        """Carry out the reset; never raise for expected failures, return a result instead."""
        ...

    def dry_run(self, job: ExecutionJob) -> ExecutionResult:
        """What `execute` would do for `job`, changing nothing (`requests dry-run`).

        The status and code are what `execute` would return now (`reset`, `already_reset`,
        `account_not_found`, ...); `detail` says what would change, in words for a person.
        """
        ...

    def probe(self) -> str:
        """Check reachability without resetting anything (used by `doctor`); raise on failure."""
        ...
