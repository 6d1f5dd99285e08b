"""Retention (AVG/GDPR, issue #6 item 5): forget what we no longer need, keep the statistics.

Two periods from `[retention]`, both counted from when a message was received / a request was
created:

* after `raw_message_days` the stored raw bytes of a message are deleted (`messages.raw = NULL`,
  `raw_purged_at = now`); the decision JSON stays, so the message is still explainable, but it
  can no longer be reprocessed;
* after `request_days` the personal data is anonymised: in requests (sender, account e-mail,
  evidence text, case reference, staff names, free-text results), in their messages (sender,
  subject, personal fields of the decision JSON, error text), in the replies (recipient,
  subject, body, bytes), in execution details and in the audit rows' data and actor. Counts,
  outcomes, reason codes, states, municipality, kinds and every timestamp are kept, so
  `reset-mailbot stats` over old periods still adds up.

An address becomes `***@domain` (the domain is the municipality or a mail provider: useful for
statistics, not personal); free text that may hold names becomes `[anonymised]`.

A request is anonymised only once it can no longer change: in a final state, or still
`incomplete` (it never got far enough to act on). An open request older than `request_days`
(awaiting a person, say) is kept and counted in `requests_kept_open`, because executing it
needs the account address. A message without a request is anonymised on its own.

The audit log is append-only for the ORM; adapters/db/retention.py (the statements; the
scrubbing is domain/anonymise.py) is the one deliberate exception: it rewrites audit rows' data
with an explicit Core UPDATE and then appends a `retention_anonymised` audit event (per
request, or per message without a request) saying what was rewritten. That event is also what
makes the job idempotent: a message that has one is not touched again, a request has
`anonymised_at` set. A dry run executes the very same statements and rolls the transaction
back, so its counts are exactly what a real run would do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from reset_mailbot.adapters.db.retention import ANONYMISED_EVENT, RAW_PURGED_EVENT, purge_rows
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.config import RetentionSettings
from reset_mailbot.logs import get_logger

__all__ = ["ANONYMISED_EVENT", "RAW_PURGED_EVENT", "PurgeReport", "purge"]

log = get_logger("reset_mailbot.retention")


@dataclass(frozen=True)
class PurgeReport:
    """What one run did (or, with `dry_run`, would do)."""

    now: datetime
    dry_run: bool
    raw_before: datetime  # raw bytes of messages received before this are deleted
    anonymise_before: datetime  # requests/messages created/received before this are anonymised
    raw_purged: int = 0
    requests_anonymised: int = 0
    requests_kept_open: int = 0
    messages_anonymised: int = 0
    outbox_anonymised: int = 0
    executions_anonymised: int = 0
    audit_anonymised: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("now", "raw_before", "anonymise_before"):
            data[key] = data[key].isoformat()
        return data


class _Rollback(Exception):
    """Raised inside the unit of work of a dry run so that nothing is committed."""


def purge(
    store: Store, settings: RetentionSettings, now: datetime, dry_run: bool = False
) -> PurgeReport:
    """Delete old raw bytes and anonymise old personal data; idempotent. See the module doc.

    Called daily by the daemon and by `reset-mailbot purge`. Runs in one transaction.
    """
    raw_before = now - timedelta(days=settings.raw_message_days)
    anonymise_before = now - timedelta(days=settings.request_days)
    counts: dict[str, int] = {}
    try:
        with store.unit_of_work() as uow:
            counts = purge_rows(uow, now, raw_before, anonymise_before)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    report = PurgeReport(
        now=now, dry_run=dry_run, raw_before=raw_before, anonymise_before=anonymise_before,
        **counts,
    )
    log.info("retention_purged", **report.as_json())
    return report
