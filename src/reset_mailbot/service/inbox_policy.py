"""The settings the inbox and the request lifecycle work by, built by `bootstrap` from
[mailbox], [executor], [sla] and [limits]: finished values, no configuration file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from reset_mailbot.domain.backoff import Backoff
from reset_mailbot.service.limits import ResetLimits


@dataclass(frozen=True)
class InboxPolicy:
    """The settings the inbox processing needs (from [mailbox], [executor] and [sla])."""

    support_address: str
    max_message_bytes: int
    executor_kind: str = "manual"
    require_approval: bool = False
    sla_working_days: int = 2
    sla_timezone: str = "Europe/Amsterdam"
    max_replies_per_sender_per_hour: int = 5
    deferred_backoff: Backoff = field(
        default_factory=lambda: Backoff(timedelta(seconds=60), timedelta(hours=1))
    )
    # issue #5: beyond these (or for a staff account) a complete request waits for approval
    limits: ResetLimits = field(default_factory=ResetLimits)
