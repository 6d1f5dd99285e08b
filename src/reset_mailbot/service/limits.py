"""When a complete request must wait for a person although the approval gate is off (issue #5).

Two brakes on automatic resets, both checked in the transaction that makes a request complete:

* **Rate limits** (`rate_limited`): more than `per_municipality_per_day` resets for one
  municipality in the last 24 hours, or more than `per_account_per_30_days` for one account in
  the last 30 days, is not what a municipality normally sends; a stolen official mailbox would
  look like that. Resets on their way (queued, running, waiting for a manual reset) count too.
* **Staff accounts** (`staff_account`): an account e-mail on a municipal domain or a Forus
  domain belongs to someone with more rights on the platform than a resident; such a reset is
  never automatic.

Neither refuses anything: the request waits in `awaiting_approval` with the reason recorded
(`result_code`, `result_detail`, the audit row) and a warning log line, and a second person
approves or denies it with `requests approve/deny`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reset_mailbot.adapters.db.schema import Request
from reset_mailbot.adapters.db.unit_of_work import UnitOfWork
from reset_mailbot.domain.lifecycle import Hold
from reset_mailbot.domain.reasons import ReasonCode

DAY = timedelta(days=1)
THIRTY_DAYS = timedelta(days=30)


@dataclass(frozen=True)
class ResetLimits:
    """`[executor] max_resets_per_*` and the staff domains (municipal + Forus)."""

    per_municipality_per_day: int = 10
    per_account_per_30_days: int = 2
    staff_domains: frozenset[str] = field(default_factory=frozenset)

    def with_domains(self, domains: Iterable[str]) -> ResetLimits:
        extra = {d.strip().lower().rstrip(".") for d in domains if d and d.strip()}
        return ResetLimits(
            self.per_municipality_per_day, self.per_account_per_30_days,
            self.staff_domains | frozenset(extra),
        )


def staff_domain_of(account_email: str | None, domains: frozenset[str]) -> str | None:
    """The staff domain the account is on (the domain itself or a subdomain), else None."""
    if not account_email or "@" not in account_email:
        return None
    domain = account_email.rpartition("@")[2].strip().lower().rstrip(".")
    for staff in domains:
        if domain == staff or domain.endswith("." + staff):
            return staff
    return None


def hold_reason(
    uow: UnitOfWork, request: Request, limits: ResetLimits, now: datetime
) -> Hold | None:
    """The first brake that applies to `request` (staff account before the counts), or None;
    domain/lifecycle.route_complete sends a held request to a person."""
    staff = staff_domain_of(request.account_email, limits.staff_domains)
    if staff is not None:
        return Hold(
            ReasonCode.STAFF_ACCOUNT.value,
            f"account {request.account_email} is on staff domain {staff}: never reset "
            "automatically",
            {"staff_domain": staff},
        )
    uow.serialise_reset_limits()  # counted and acted on in one transaction, one at a time
    if request.municipality:
        count = uow.requests.count_executed(
            now - DAY, municipality=request.municipality, include_in_flight=True,
            exclude_request_id=request.id,
        )
        if count >= limits.per_municipality_per_day:
            return Hold(
                ReasonCode.RATE_LIMITED.value,
                f"{count} resets for {request.municipality} in the last 24 hours "
                f"(max_resets_per_municipality_per_day = {limits.per_municipality_per_day})",
                {"limit": "max_resets_per_municipality_per_day", "count": count,
                 "max": limits.per_municipality_per_day},
            )
    if request.account_email:
        count = uow.requests.count_executed(
            now - THIRTY_DAYS, account_email=request.account_email, include_in_flight=True,
            exclude_request_id=request.id,
        )
        if count >= limits.per_account_per_30_days:
            return Hold(
                ReasonCode.RATE_LIMITED.value,
                f"{count} resets of {request.account_email} in the last 30 days "
                f"(max_resets_per_account_per_30_days = {limits.per_account_per_30_days})",
                {"limit": "max_resets_per_account_per_30_days", "count": count,
                 "max": limits.per_account_per_30_days},
            )
    return None
