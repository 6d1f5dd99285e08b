"""The SLA job on SQLite and PostgreSQL with a fixed clock: weekend, King's Day, warning, breach.

A request completed on Friday 24 April 2026 is due at the end of Wednesday 29 April: Saturday
and Sunday are weekend days and Monday 27 April is King's Day. The job must stay quiet where a
calendar without the holiday would already warn, warn once inside `warn_hours`, flag the breach
once after the deadline, and queue exactly one notice per event to the notify address.
"""

from __future__ import annotations

import email
import functools
import threading
import zlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from reset_mailbot.adapters.db.schema import AuditEntry, OutboxItem, Request
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.smtp import SmtpSender
from reset_mailbot.config import SlaSettings
from reset_mailbot.domain.models import Decision, Evidence, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, Outcome
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.domain.working_days import deadline
from reset_mailbot.rules_loader import packaged_templates
from reset_mailbot.service.delivery import OutboxWorker
from reset_mailbot.service.sla import check_sla as service_check_sla

COMPLETED = T0 = datetime(2026, 4, 24, 8, 0, tzinfo=UTC)  # Friday 10:00 in Amsterdam
DUE = datetime(2026, 4, 29, 22, 0, tzinfo=UTC)  # end of Wednesday 29 April, Amsterdam time
NOTIFY = "sla-alerts@forus.test"
SUPPORT = "support@forus.test"
SETTINGS = SlaSettings(notify_address=NOTIFY, warn_hours=8)
TEMPLATES = packaged_templates()
check_sla = functools.partial(service_check_sla, templates=TEMPLATES)



def add_request(
    store: Store, key: str, *, completed: datetime | None = COMPLETED,
    final: bool = False, municipality: str = "Utrecht",
) -> str:
    items = ResetRequest(
        account_email="resident@example.org", identity_verified=True, reset_instructed=True,
        evidence=[Evidence(item=Item.ACCOUNT_EMAIL, text="account: resident@example.org")],
    )
    decision = Decision(
        message_id=key, message_key=key, outcome=Outcome.COMPLETE, reasons=[],
        missing=items.missing, reply=True, request=items, subject="2FA reset",
        sender=SenderInfo(address="j.jansen@utrecht.nl", municipality=municipality),
    )
    with store.unit_of_work() as uow:
        message = uow.messages.record(decision, raw=b"raw", sha256="ab" * 32, mailbox="INBOX",
                                     uidvalidity=1, uid=zlib.crc32(key.encode()),
                                     now=COMPLETED)
        request = uow.requests.create(decision, message, now=COMPLETED)
        if completed is not None:
            request.deadline_at = deadline(completed, 2, "Europe/Amsterdam")
        if final:
            uow.requests.transition(request, RequestState.EXECUTING, now=COMPLETED)
            uow.requests.transition(request, RequestState.EXECUTED, now=COMPLETED)
        return request.id


def rows(store: Store, query: Any) -> list[Any]:
    with store.unit_of_work() as uow:
        return list(uow.session.execute(query).all())


def notices(store: Store) -> list[tuple[str | None, str, str]]:
    return [tuple(r) for r in rows(store, select(OutboxItem.request_id, OutboxItem.kind,
                                                 OutboxItem.to_address).order_by(OutboxItem.id))]


def events(store: Store, request_id: str) -> list[str]:
    return [r[0] for r in rows(store, select(AuditEntry.event).where(
        AuditEntry.request_id == request_id, AuditEntry.event.like("sla_%")
    ).order_by(AuditEntry.id))]


def test_deadline_skips_the_weekend_and_kings_day() -> None:
    assert deadline(COMPLETED, 2, "Europe/Amsterdam") == DUE


def test_warning_then_breach_each_once_with_one_notice(store: Store) -> None:
    rid = add_request(store, "<late@utrecht.nl>")
    done = add_request(store, "<done@utrecht.nl>", final=True)
    waiting = add_request(store, "<no-deadline@utrecht.nl>", completed=None)
    [(updated_before,)] = rows(store, select(Request.updated_at).where(Request.id == rid))

    # Tuesday 22:00 local: without King's Day this would be 2 hours before the deadline
    report = check_sla(store, SETTINGS, datetime(2026, 4, 28, 20, 0, tzinfo=UTC),
                       from_address=SUPPORT)
    assert (report.warned, report.breached, report.notices) == ([], [], 0)

    at = datetime(2026, 4, 29, 15, 0, tzinfo=UTC)  # 7 hours before the deadline
    report = check_sla(store, SETTINGS, at, from_address=SUPPORT)
    assert (report.warned, report.breached, report.notices) == ([rid], [], 1)
    assert notices(store) == [(rid, "sla_notice", NOTIFY)]
    assert events(store, rid) == ["sla_warning"]
    again = check_sla(store, SETTINGS, datetime(2026, 4, 29, 21, 59, tzinfo=UTC))
    assert (again.warned, again.breached, again.notices) == ([], [], 0)

    breach_at = datetime(2026, 4, 29, 22, 30, tzinfo=UTC)
    report = check_sla(store, SETTINGS, breach_at, from_address=SUPPORT)
    assert (report.warned, report.breached, report.notices) == ([], [rid], 1)
    for later in (breach_at, datetime(2026, 5, 4, 9, 0, tzinfo=UTC)):
        again = check_sla(store, SETTINGS, later, from_address=SUPPORT)
        assert (again.warned, again.breached, again.notices) == ([], [], 0)

    assert notices(store) == [(rid, "sla_notice", NOTIFY)] * 2
    assert events(store, rid) == ["sla_warning", "sla_breach"]
    assert events(store, done) == [] and events(store, waiting) == []
    [(warned_at, breached_at, updated_at)] = rows(store, select(
        Request.sla_warned_at, Request.sla_breached_at, Request.updated_at
    ).where(Request.id == rid))
    assert (warned_at, breached_at, updated_at) == (at, breach_at, updated_before)
    [data] = [r[0] for r in rows(store, select(AuditEntry.data).where(
        AuditEntry.event == "sla_breach"))]
    assert data["deadline_at"] == DUE.isoformat()
    assert data["state"] == "complete" and data["municipality"] == "Utrecht"


def test_first_seen_after_the_deadline_is_only_a_breach(store: Store) -> None:
    rid = add_request(store, "<down@utrecht.nl>")
    report = check_sla(store, SETTINGS, datetime(2026, 5, 1, 8, 0, tzinfo=UTC))
    assert (report.warned, report.breached) == ([], [rid])
    assert events(store, rid) == ["sla_breach"]


def test_without_notify_address_it_flags_and_audits_but_mails_nobody(store: Store) -> None:
    rid = add_request(store, "<quiet@utrecht.nl>")
    report = check_sla(store, SlaSettings(warn_hours=0), datetime(2026, 4, 29, 21, 0, tzinfo=UTC))
    assert (report.warned, report.breached, report.notices) == ([], [], 0)  # no warnings at 0
    report = check_sla(store, SlaSettings(warn_hours=0), datetime(2026, 4, 30, 9, 0, tzinfo=UTC))
    assert (report.breached, report.notices) == ([rid], 0)
    assert notices(store) == []
    assert events(store, rid) == ["sla_breach"]


def test_concurrent_checks_flag_once(store: Store) -> None:
    ids = [add_request(store, f"<c{i}@utrecht.nl>") for i in range(5)]
    at = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    barrier = threading.Barrier(3)
    reports = []

    def run() -> None:
        barrier.wait()
        reports.append(check_sla(store, SETTINGS, at, from_address=SUPPORT))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r for report in reports for r in report.breached) == sorted(ids)
    assert len(notices(store)) == 5


def test_the_notice_goes_out_through_the_outbox(store: Store, smtp_sink: Any) -> None:
    rid = add_request(store, "<mail@utrecht.nl>", municipality="'s-Hertogenbosch")
    check_sla(store, SETTINGS, datetime(2026, 4, 30, 6, 0, tzinfo=UTC), from_address=SUPPORT)
    sender = SmtpSender("127.0.0.1", smtp_sink.port, "none", from_address=SUPPORT)
    worker = OutboxWorker(store, sender, SUPPORT, clock=lambda: datetime.now(UTC))
    assert worker.run_due() == 1
    [(meta, raw)] = smtp_sink.messages()
    assert meta["rcpt_tos"] == [NOTIFY]
    mail = email.message_from_bytes(raw)
    assert mail["To"] == NOTIFY and mail["From"] == SUPPORT
    assert mail["Subject"] == f"[reset-mailbot] SLA breach: {rid} ('s-Hertogenbosch)"
    assert mail["X-Reset-Mailbot"] == "sla_notice"
    assert mail["Auto-Submitted"] == "auto-generated"
    text, html = (part.get_payload(decode=True).decode() for part in mail.get_payload())
    assert f"<td>{rid}</td>" in html  # the HTML part says the same (sla_notice.en.html.j2)
    body = text
    assert f"Request:      {rid}" in body
    assert "Municipality: 's-Hertogenbosch" in body
    assert "Deadline:     2026-04-30 00:00 CEST (2026-04-29 22:00 UTC)" in body
    assert "State:        complete" in body
    assert "8.0 hours overdue" in body
    assert "resident@example.org" not in body  # no personal data in an internal notice
    assert "resident@example.org" not in html
    assert worker.run_due() == 0


def test_the_notice_speaks_the_configured_language(store: Store, smtp_sink: Any) -> None:
    """The wording is data (rules/templates/sla_notice.*.j2), in `[sla] notice_language`."""
    rid = add_request(store, "<mail@utrecht.nl>")
    dutch = SlaSettings(notify_address=NOTIFY, warn_hours=8, notice_language="nl")
    check_sla(store, dutch, datetime(2026, 4, 30, 6, 0, tzinfo=UTC), from_address=SUPPORT)
    sender = SmtpSender("127.0.0.1", smtp_sink.port, "none", from_address=SUPPORT)
    assert OutboxWorker(store, sender, SUPPORT, clock=lambda: datetime.now(UTC)).run_due() == 1
    [(_meta, raw)] = smtp_sink.messages()
    text = email.message_from_bytes(raw).get_payload()[0].get_payload(decode=True).decode()
    assert f"Resetverzoek {rid} is over de termijn" in text
    assert "8.0 uur over de termijn" in text
