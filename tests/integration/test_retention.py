"""Retention (`service.retention.purge`) on real SQLite and PostgreSQL databases.

The data is written through the same repository calls the daemon uses; the checks read the
tables back raw, so a personal value hidden anywhere (decision JSON, audit data, reply bytes)
makes a test fail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.schema import AuditEntry, Message, OutboxItem, Request
from reset_mailbot.adapters.db.unit_of_work import Store, UnitOfWork
from reset_mailbot.adapters.executors.base import ExecutionResult, ExecutionStatus
from reset_mailbot.config import RetentionSettings
from reset_mailbot.domain.models import Decision, Evidence, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, Outcome, ReasonCode
from reset_mailbot.domain.request_state import RequestState
from reset_mailbot.service.retention import ANONYMISED_EVENT, purge

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
SENDER = "j.devries@utrecht.nl"
ACCOUNT = "piet.jansen@hotmail.com"
STRANGER = "mallory.evil@gmail.com"
SETTINGS = RetentionSettings(raw_message_days=30, request_days=365)
# Local parts that must not survive anonymisation anywhere in the database.
PERSONAL = ("j.devries", "piet.jansen", "mallory.evil", "Mallory", "Jan de Vries", "88123",
            "Pieter Smit")



def decision(key: str, *, sender: str = SENDER, outcome: Outcome = Outcome.COMPLETE,
             reasons: tuple[ReasonCode, ...] = ()) -> Decision:
    request = ResetRequest(
        account_email=ACCOUNT, identity_verified=True, reset_instructed=True,
        case_reference="88123",
        evidence=[
            Evidence(item=Item.ACCOUNT_EMAIL, text=f"E-mailadres account: {ACCOUNT}"),
            Evidence(item=Item.IDENTITY_VERIFIED,
                     text="Jan de Vries heeft het paspoort van de inwoner gecontroleerd."),
        ],
    )
    return Decision(
        message_id=f"<{key}@utrecht.nl>", message_key=f"<{key}@utrecht.nl>", outcome=outcome,
        reasons=list(reasons), reply=True,
        sender=SenderInfo(address=sender, municipality="Utrecht", name="Jan Jansen"),
        request=request,
        subject=f"Reset 2FA {ACCOUNT}",
    )


def message(uow: UnitOfWork, key: str, at: datetime, **kw: Any) -> Message:
    d = decision(key, **kw)
    return uow.messages.record(d, raw=f"From: {SENDER}\r\n\r\n{ACCOUNT}".encode(),
                              received_at=at, now=at)


def executed_request(store: Store, key: str, at: datetime) -> str:
    """A request the daemon executed and confirmed, approved by a named person."""
    with store.unit_of_work() as uow:
        msg = message(uow, key, at)
        req = uow.requests.create(decision(key), msg, now=at)
        uow.requests.transition(req, RequestState.AWAITING_APPROVAL, now=at)
        uow.requests.approve(req, by="Pieter Smit", now=at)
        execution = uow.executions.create(req, now=at)
        uow.outbox.queue(kind="confirmation", to_address=SENDER, subject="Re: Reset 2FA",
                        body=f"Beste Jan de Vries, de 2FA van {ACCOUNT} is gereset.",
                        rfc822=f"To: {SENDER}\r\n\r\n{ACCOUNT}".encode(),
                        reply_message_id=f"<reply-{key}@forus.test>", request=req, now=at)
        request_id, execution_id = req.id, execution.id
    store.claim_due_executions(now=at)
    [claim] = store.claim_due_outbox(now=at)
    with store.unit_of_work() as uow:
        uow.outbox.mark_sent(claim.id, now=at)
        uow.executions.record_result(
            execution_id,
            ExecutionResult(status=ExecutionStatus.SUCCEEDED, code="reset",
                            detail=f"2FA removed for {ACCOUNT}"),
            now=at + timedelta(hours=2),
        )
    return request_id


def open_request(store: Store, key: str, at: datetime) -> str:
    with store.unit_of_work() as uow:
        req = uow.requests.create(decision(key), message(uow, key, at), now=at)
        uow.requests.transition(req, RequestState.AWAITING_MANUAL_RESET, now=at)
        return req.id


def loose_rejection(store: Store, key: str, at: datetime) -> int:
    with store.unit_of_work() as uow:
        msg = message(uow, key, at, sender=STRANGER, outcome=Outcome.REJECTED,
                      reasons=(ReasonCode.DOMAIN_NOT_ALLOWLISTED,))
        uow.audit_log.append("note", message=msg, now=at,
                             data={"from_header": f"Mallory <{STRANGER}>"})
        return msg.id


def dump(store: Store) -> str:
    """Every row of every table as text (bytes decoded), to search for personal data."""
    out = []
    with store.engine.connect() as conn:
        for table in ("messages", "requests", "outbox", "executions", "audit_log"):
            for row in conn.execute(text(f"select * from {table}")):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("utf-8", "replace")
                    out.append(str(value))
    return "\n".join(out)


def test_raw_bytes_are_deleted_after_the_first_period_only(store: Store) -> None:
    with store.unit_of_work() as uow:
        old = message(uow, "old", T0).id
        young = message(uow, "young", T0 + timedelta(days=20)).id
    now = T0 + timedelta(days=31)
    dry = purge(store, SETTINGS, now, dry_run=True)
    assert dry.raw_purged == 1 and dry.dry_run
    with store.unit_of_work() as uow:
        assert uow.messages.get(old).raw is not None  # a dry run changes nothing

    report = purge(store, SETTINGS, now)
    assert report.raw_purged == 1
    assert report.requests_anonymised == report.messages_anonymised == 0
    with store.unit_of_work() as uow:
        purged, kept = uow.messages.get(old), uow.messages.get(young)
        assert purged.raw is None and purged.raw_purged_at == now
        assert purged.sender == SENDER and purged.decision is not None  # still explainable
        assert kept.raw is not None and kept.raw_purged_at is None
        assert [e.data["messages"] for e in uow.audit_log.entries(event="retention_raw_purged")] \
            == [1]
    assert purge(store, SETTINGS, now).raw_purged == 0  # idempotent


def test_anonymisation_keeps_statistics_and_removes_every_personal_value(store: Store) -> None:
    done = executed_request(store, "done", T0)
    kept_open = open_request(store, "open", T0)
    loose = loose_rejection(store, "loose", T0)
    recent = executed_request(store, "recent", T0 + timedelta(days=300))
    assert "piet.jansen" in dump(store)
    now = T0 + timedelta(days=366)
    with store.unit_of_work() as uow:
        before = {r.id: (r.state, r.municipality, r.created_at, r.executed_at,
                         r.identity_verified) for r in queries.list_requests(uow)}

    dry = purge(store, SETTINGS, now, dry_run=True)
    report = purge(store, SETTINGS, now)
    assert dry.as_json() | {"dry_run": False} == report.as_json()
    assert report.requests_anonymised == 1
    assert report.requests_kept_open == 1
    assert report.messages_anonymised == 2  # the executed request's and the loose one
    assert report.outbox_anonymised == 1
    assert report.executions_anonymised == 1
    assert report.audit_anonymised > 5

    with store.unit_of_work() as uow:
        after = {r.id: (r.state, r.municipality, r.created_at, r.executed_at,
                        r.identity_verified) for r in queries.list_requests(uow)}
        assert after == before  # statistics survive
        req = queries.request_story(uow, done)
        assert req is not None
        assert req.anonymised_at == now
        assert (req.sender, req.account_email) == ("***@utrecht.nl", "***@hotmail.com")
        assert req.case_reference == "[anonymised]"
        assert req.approved_by == "[anonymised]"
        assert [e["item"] for e in req.evidence] == ["account_email", "identity_verified"]
        assert {e["text"] for e in req.evidence} == {"[anonymised]"}
        [msg] = req.messages
        assert msg.outcome == "complete" and msg.raw is None and msg.subject is None
        assert msg.decision is not None
        assert msg.decision["sender"] == {"address": "***@utrecht.nl",
                                          "municipality": "Utrecht", "name": "[anonymised]"}
        assert msg.decision["outcome"] == "complete"
        [reply] = req.outbox
        assert (reply.kind, reply.state, reply.to_address) == (
            "confirmation", "sent", "***@utrecht.nl")
        assert reply.rfc822 == b"" and reply.body == "[anonymised]"
        events = [a.event for a in req.audit]
        assert events[-1] == ANONYMISED_EVENT and "state_changed" in events
        approval = next(a for a in req.audit if a.event == "state_changed"
                        and a.data.get("from") == "awaiting_approval")
        assert approval.data["to"] == "complete"  # a state, not an address: kept
        assert approval.actor == "[anonymised]"
        rejected = uow.messages.get(loose)
        assert rejected.sender == "***@gmail.com" and rejected.reasons == [
            "domain_not_allowlisted"]
        still_open = uow.requests.get(kept_open)
        young = uow.requests.get(recent)
        assert still_open.sender == SENDER and still_open.anonymised_at is None
        assert young.account_email == ACCOUNT and young.anonymised_at is None

    # nothing personal left in the anonymised rows: only the two kept requests hold any
    store_text = dump_without(store, keep={kept_open, recent})
    for value in PERSONAL:
        assert value not in store_text, value

    again = purge(store, SETTINGS, now)
    assert (again.requests_anonymised, again.messages_anonymised, again.audit_anonymised) \
        == (0, 0, 0)
    with store.unit_of_work() as uow:
        assert len(uow.audit_log.entries(event=ANONYMISED_EVENT)) == 2


def dump_without(store: Store, keep: set[str]) -> str:
    """`dump` limited to the rows not belonging to the `keep` requests."""
    with store.unit_of_work() as uow:
        session = uow.session
        kept_messages = set(session.scalars(
            select(Message.id).where(Message.request_id.in_(keep))))
        rows: list[Any] = []
        rows += [r for r in session.scalars(select(Request)) if r.id not in keep]
        rows += [m for m in session.scalars(select(Message)) if m.id not in kept_messages]
        rows += [o for o in session.scalars(select(OutboxItem)) if o.request_id not in keep]
        rows += [a for a in session.scalars(select(AuditEntry))
                 if a.request_id not in keep and a.message_id not in kept_messages]
        out = []
        for row in rows:
            for column in row.__table__.columns:
                value = getattr(row, column.key)
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                out.append(str(value))
        return "\n".join(out)


def test_purge_keeps_audit_rows_of_kept_requests_untouched(store: Store) -> None:
    kept = open_request(store, "open", T0)
    with store.unit_of_work() as uow:
        before = [(a.id, a.data, a.actor) for a in uow.audit_log.entries(request_id=kept)]
    purge(store, SETTINGS, T0 + timedelta(days=400))
    with store.unit_of_work() as uow:
        assert [(a.id, a.data, a.actor) for a in uow.audit_log.entries(request_id=kept)] == before
