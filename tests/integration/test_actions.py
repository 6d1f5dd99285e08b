"""Issue #5 in the service layer, on real databases: the limits and staff-account brakes, the
four-eyes gate (approve/deny), the manual executor (done/failed) and dry runs.

Requests are made complete by the inbox processor's own `act_on` (the decision is built here,
so no DKIM or DNS is needed); executors are real: the fake Forus HTTP endpoint and MariaDB.
The whole daemon path is in tests/e2e/test_executors.py.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.schema import OutboxItem, Request
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.executors.base import ExecutionJob, ExecutionStatus, Executor
from reset_mailbot.adapters.executors.forus_db import EVENT, ForusDbExecutor
from reset_mailbot.adapters.executors.http import HttpExecutor
from reset_mailbot.adapters.executors.manual import ManualExecutor
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.domain.message import parse_message
from reset_mailbot.domain.models import Decision, Evidence, ResetRequest, SenderInfo
from reset_mailbot.domain.reasons import Item, Outcome
from reset_mailbot.rules_loader import load_rules, packaged_templates
from reset_mailbot.service import actions
from reset_mailbot.service.actions import ActionRefused
from reset_mailbot.service.delivery import ExecutionWorker
from reset_mailbot.service.inbox import InboxProcessor
from reset_mailbot.service.inbox_policy import InboxPolicy
from reset_mailbot.service.limits import ResetLimits, staff_domain_of
from reset_mailbot_testing.dkim_signing import plain_message
from reset_mailbot_testing.forus_http import DEFAULT_TOKEN, FakeForus
from reset_mailbot_testing.mariadb import ForusDatabase
from tests.examples import EXAMPLES

TEMPLATES = packaged_templates()

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SUPPORT = "support@forus.test"
SENDER = "j.jansen@utrecht.nl"
ACCOUNT = "fam.ozturk@outlook.com"



@pytest.fixture
def forus() -> Iterator[FakeForus]:
    with FakeForus(accounts={ACCOUNT: True, "no.2fa@example.nl": False}) as fake:
        yield fake


def http_executor(forus: FakeForus) -> HttpExecutor:
    return HttpExecutor(forus.url, DEFAULT_TOKEN, timeout=5)


def processor(store: Store, **policy: object) -> InboxProcessor:
    context = DecisionContext(
        rules=load_rules(municipalities=EXAMPLES / "municipalities.yaml"),
        key_lookup=lambda _name: None,
        support_address=SUPPORT,
    )
    settings: dict[str, object] = {"executor_kind": "http"} | policy
    return InboxProcessor(
        store, context,
        InboxPolicy(support_address=SUPPORT, max_message_bytes=10**6, **settings),  # type: ignore[arg-type]
        clock=lambda: T0,
    )


def submit(
    proc: InboxProcessor, key: str, *, account: str = ACCOUNT, sender: str = SENDER,
    municipality: str = "Utrecht",
) -> tuple[str, str]:
    """A complete request from `sender` about `account`, acted on as the inbox would."""
    items = ResetRequest(
        account_email=account, identity_verified=True, reset_instructed=True,
        case_reference="2026-00871",
        evidence=[Evidence(item=Item.ACCOUNT_EMAIL, text=f"account: {account}")],
    )
    decision = Decision(
        message_id=f"<{key}@utrecht.nl>", message_key=key, outcome=Outcome.COMPLETE,
        reasons=[], missing=[], reply=True,
        sender=SenderInfo(address=sender, municipality=municipality), request=items,
        subject="2FA reset",
    )
    raw = plain_message(from_=f"Official <{sender}>", msgid=f"<{key}@utrecht.nl>",
                        body=f"E-mailadres account: {account}\r\n")
    # the parsed message too where act_on takes it (the reply language comes from it)
    extra = (
        [parse_message(raw)] if "parsed" in inspect.signature(proc.act_on).parameters else []
    )
    with proc.store.unit_of_work() as uow:
        message = uow.messages.record(
            decision, raw=raw, sha256="ab" * 32, mailbox="INBOX",
            uidvalidity=7, uid=zlib.crc32(key.encode()), now=T0,
        )
        request = proc.act_on(uow, decision, message, T0, *extra)
        assert request is not None
        return request.id, request.state


def request_row(store: Store, request_id: str) -> Request:
    with store.unit_of_work() as uow:
        request = queries.request_story(uow, request_id)
        assert request is not None
        return request


def replies(store: Store, request_id: str) -> list[OutboxItem]:
    return list(request_row(store, request_id).outbox)


def run_executions(store: Store, executor: Executor) -> int:
    return ExecutionWorker(store, executor, SUPPORT, clock=lambda: T0,
                           templates=TEMPLATES).run_due(limit=50)


# -- limits and staff accounts ------------------------------------------------------------------


def test_the_eleventh_reset_of_a_municipality_in_a_day_waits_for_approval(
    store: Store, forus: FakeForus, caplog: pytest.LogCaptureFixture
) -> None:
    proc = processor(store)
    for n in range(10):
        _, state = submit(proc, f"m{n}", account=f"resident{n}@example.nl")
        assert state == "complete"  # queued: in flight counts toward the limit
    held, state = submit(proc, "m10", account="resident10@example.nl")
    assert state == "awaiting_approval"
    row = request_row(store, held)
    assert (row.result_code, row.executions) == ("rate_limited", [])
    assert "max_resets_per_municipality_per_day = 10" in (row.result_detail or "")
    [audit] = [a for a in row.audit if a.event == "state_changed"
               and a.data.get("to") == "awaiting_approval"]
    assert audit.data["reason"] == "rate_limited" and audit.data["count"] == 10
    # another municipality is not affected
    _, other = submit(proc, "n0", account="x@example.nl", sender="a@nijmegen.nl",
                      municipality="Nijmegen")
    assert other == "complete"


def test_resets_older_than_a_day_do_not_count_for_the_municipality(store: Store) -> None:
    proc = processor(store, limits=ResetLimits(per_municipality_per_day=1))
    first, _ = submit(proc, "old", account="a@example.nl")
    with store.unit_of_work() as uow:
        row = uow.requests.get(first)
        assert row is not None
        row.state, row.executed_at = "executed", T0 - timedelta(hours=25)
    _, state = submit(proc, "new", account="b@example.nl")
    assert state == "complete"
    _, state = submit(proc, "newer", account="c@example.nl")
    assert state == "awaiting_approval"


def test_the_third_reset_of_an_account_in_30_days_waits_for_approval(store: Store) -> None:
    proc = processor(store)
    first, _ = submit(proc, "a1")
    second, _ = submit(proc, "a2", account=ACCOUNT.upper())  # the same account, other case
    with store.unit_of_work() as uow:
        for request_id, days in ((first, 29), (second, 1)):
            row = uow.requests.get(request_id)
            assert row is not None
            row.state, row.executed_at = "executed", T0 - timedelta(days=days)
    held, state = submit(proc, "a3")
    assert state == "awaiting_approval"
    row = request_row(store, held)
    assert row.result_code == "rate_limited"
    assert "max_resets_per_account_per_30_days = 2" in (row.result_detail or "")


def test_a_reset_31_days_ago_does_not_count_for_the_account(store: Store) -> None:
    proc = processor(store)
    for key, days in (("b1", 31), ("b2", 2)):
        request_id, _ = submit(proc, key)
        with store.unit_of_work() as uow:
            row = uow.requests.get(request_id)
            assert row is not None
            row.state, row.executed_at = "executed", T0 - timedelta(days=days)
    assert submit(proc, "b3")[1] == "complete"


@pytest.mark.parametrize(
    ("account", "domain"),
    [
        ("p.devries@utrecht.nl", "utrecht.nl"),  # a municipal domain from the allowlist
        ("p.devries@Eindhoven.NL", "eindhoven.nl"),
        ("helpdesk@forus.test", "forus.test"),  # the support address's domain
        ("x@mail.forus.io", "forus.io"),  # a configured staff domain, subdomain included
    ],
)
def test_staff_accounts_are_never_reset_automatically(
    store: Store, account: str, domain: str
) -> None:
    proc = processor(store, limits=ResetLimits(staff_domains=frozenset({"forus.io"})))
    request_id, state = submit(proc, "s1", account=account)
    assert state == "awaiting_approval"
    row = request_row(store, request_id)
    assert row.result_code == "staff_account"
    assert domain in (row.result_detail or "")


def test_staff_domain_matching_is_exact_or_subdomain() -> None:
    domains = frozenset({"utrecht.nl"})
    assert staff_domain_of("a@utrecht.nl", domains) == "utrecht.nl"
    assert staff_domain_of("a@ict.utrecht.nl", domains) == "utrecht.nl"
    assert staff_domain_of("a@notutrecht.nl", domains) is None
    assert staff_domain_of(None, domains) is None


def test_manual_executor_is_held_too_and_goes_to_the_manual_queue_when_approved(
    store: Store,
) -> None:
    proc = processor(store, executor_kind="manual")
    assert submit(proc, "q1", account="x@example.nl")[1] == "awaiting_manual_reset"
    held, state = submit(proc, "q2", account="p@utrecht.nl")
    assert state == "awaiting_approval"
    outcome = actions.approve(store, held, by="Petra Forus", executor=None,
                              support_address=SUPPORT, clock=lambda: T0, templates=TEMPLATES)
    assert outcome.state == "awaiting_manual_reset"


# -- four-eyes gate -----------------------------------------------------------------------------


def test_approve_runs_the_executor_once_and_confirms_naming_the_approver(
    store: Store, forus: FakeForus
) -> None:
    proc = processor(store, require_approval=True)
    request_id, state = submit(proc, "g1")
    assert state == "awaiting_approval"
    assert run_executions(store, http_executor(forus)) == 0  # the daemon does not touch it
    assert forus.posts() == []
    outcome = actions.approve(store, request_id, by="Petra de Boer",
                              executor=http_executor(forus), support_address=SUPPORT,
                              clock=lambda: T0, templates=TEMPLATES)
    assert outcome.state == "executed"
    assert forus.resets[ACCOUNT] == 1
    [post] = forus.posts()
    assert post.body is not None and "dry_run" not in post.body
    row = request_row(store, request_id)
    assert (row.state, row.approved_by, row.result_code) == ("executed", "Petra de Boer", "reset")
    [approval] = [a for a in row.audit if a.data.get("approved_by")]
    assert approval.actor == "Petra de Boer"
    [reply] = replies(store, request_id)
    assert reply.kind == "confirmation"
    assert "Petra de Boer" in reply.body
    # approving twice is refused, and nothing runs again
    with pytest.raises(ActionRefused, match="is executed"):
        actions.approve(store, request_id, by="Petra de Boer", executor=http_executor(forus),
                        support_address=SUPPORT, templates=TEMPLATES)
    assert len(forus.posts()) == 1


@pytest.mark.parametrize("who", ["J.Jansen@Utrecht.nl", "j.jansen", " J.JANSEN "])
def test_the_requesting_official_cannot_approve(
    store: Store, forus: FakeForus, who: str
) -> None:
    request_id, _ = submit(processor(store, require_approval=True), "g2")
    with pytest.raises(ActionRefused, match="a second person"):
        actions.approve(store, request_id, by=who, executor=http_executor(forus),
                        support_address=SUPPORT, templates=TEMPLATES)
    assert request_row(store, request_id).state == "awaiting_approval"
    assert forus.posts() == []


def test_approve_refuses_unknown_requests_and_an_empty_name(
    store: Store, forus: FakeForus
) -> None:
    with pytest.raises(ActionRefused, match="no request R-NOPE"):
        actions.approve(store, "R-NOPE", by="Petra", executor=None, support_address=SUPPORT,
                        templates=TEMPLATES)
    request_id, _ = submit(processor(store, require_approval=True), "g3")
    with pytest.raises(ActionRefused, match="--by"):
        actions.approve(store, request_id, by="  ", executor=None, support_address=SUPPORT,
                        templates=TEMPLATES)


def test_approve_with_a_temporary_failure_leaves_the_retry_to_the_daemon(
    store: Store, forus: FakeForus
) -> None:
    request_id, _ = submit(processor(store, require_approval=True), "g4")
    forus.fail_next(503)
    outcome = actions.approve(store, request_id, by="Petra", executor=http_executor(forus),
                              support_address=SUPPORT, clock=lambda: T0, templates=TEMPLATES)
    assert outcome.state == "complete" and "retries" in outcome.summary
    assert replies(store, request_id) == []
    worker = ExecutionWorker(store, http_executor(forus), SUPPORT,
                             clock=lambda: T0 + timedelta(hours=2), templates=TEMPLATES)
    assert worker.run_due() == 1
    assert request_row(store, request_id).state == "executed"
    assert forus.resets[ACCOUNT] == 1


def test_deny_sends_the_reason_and_never_executes(store: Store, forus: FakeForus) -> None:
    request_id, _ = submit(processor(store, require_approval=True), "d1")
    outcome = actions.deny(store, request_id, by="Petra de Boer",
                           reason="De naam komt niet overeen met ons dossier",
                           support_address=SUPPORT, clock=lambda: T0, templates=TEMPLATES)
    assert outcome.state == "denied"
    row = request_row(store, request_id)
    assert (row.state, row.denied_by) == ("denied", "Petra de Boer")
    [reply] = replies(store, request_id)
    assert reply.kind == "denied"
    assert "De naam komt niet overeen met ons dossier" in reply.body
    [denial] = [a for a in row.audit if a.data.get("denied_by")]
    assert denial.actor == "Petra de Boer"
    assert run_executions(store, http_executor(forus)) == 0
    with pytest.raises(ActionRefused, match="is denied"):
        actions.approve(store, request_id, by="Someone Else", executor=http_executor(forus),
                        support_address=SUPPORT, templates=TEMPLATES)
    with pytest.raises(ActionRefused, match="--reason"):
        actions.deny(store, submit(processor(store, require_approval=True), "d2")[0],
                     by="Petra", reason=" ", support_address=SUPPORT, templates=TEMPLATES)
    assert forus.posts() == []


# -- manual executor ----------------------------------------------------------------------------


def test_manual_done_executes_and_confirms(store: Store) -> None:
    request_id, state = submit(processor(store, executor_kind="manual"), "h1")
    assert state == "awaiting_manual_reset"
    outcome = actions.mark_done(store, request_id, by="Kees", note="via back office",
                                support_address=SUPPORT, clock=lambda: T0, templates=TEMPLATES)
    assert outcome.state == "executed"
    row = request_row(store, request_id)
    assert (row.state, row.executed_at is not None) == ("executed", True)
    [done] = [a for a in row.audit if a.data.get("done_by")]
    assert (done.actor, done.data["note"]) == ("Kees", "via back office")
    [reply] = replies(store, request_id)
    assert reply.kind == "confirmation" and ACCOUNT in reply.body
    with pytest.raises(ActionRefused, match="is executed; done needs awaiting_manual_reset"):
        actions.mark_done(store, request_id, by="Kees", support_address=SUPPORT,
                          templates=TEMPLATES)


def test_manual_failed_sends_the_reason(store: Store) -> None:
    request_id, _ = submit(processor(store, executor_kind="manual"), "h2")
    outcome = actions.mark_failed(
        store, request_id, by="Kees", reason="Het account is door de inwoner zelf opgeheven",
        support_address=SUPPORT, clock=lambda: T0, templates=TEMPLATES,
    )
    assert outcome.state == "execution_failed"
    [reply] = replies(store, request_id)
    assert reply.kind == "failed"
    assert "Het account is door de inwoner zelf opgeheven" in reply.body
    row = request_row(store, request_id)
    assert (row.result_code, row.result_detail) == (
        "manual_failed", "Het account is door de inwoner zelf opgeheven"
    )


def test_resets_recorded_by_people_reach_the_daemon_s_executions_counter(store: Store) -> None:
    """`requests done/failed` run in another process than the daemon: its metrics job reads
    them from the database and counts them in executions_total (issue #16), once each."""
    from reset_mailbot.service.metrics import Metrics

    metrics = Metrics(poll_interval_seconds=30, last_successful_poll=lambda: None)

    def counted(result: str, code: str) -> float:
        return metrics.registry.get_sample_value(
            "reset_mailbot_executions_total", {"result": result, "code": code}) or 0.0

    earlier, _ = submit(processor(store, executor_kind="manual"), "m-before",
                        account="earlier@example.nl")
    actions.mark_done(store, earlier, by="Kees", support_address=SUPPORT, templates=TEMPLATES)
    metrics.refresh_from_db(store, now=T0)  # where the daemon starts: the past is not counted
    assert counted("succeeded", "reset") == 0
    done, _ = submit(processor(store, executor_kind="manual"), "m-done",
                     account="done@example.nl")
    failed, _ = submit(processor(store, executor_kind="manual"), "m-failed",
                       account="failed@example.nl")
    actions.mark_done(store, done, by="Kees", support_address=SUPPORT, templates=TEMPLATES)
    actions.mark_failed(store, failed, by="Kees", reason="account bestaat niet",
                        support_address=SUPPORT, templates=TEMPLATES)
    metrics.refresh_from_db(store, now=T0)
    metrics.refresh_from_db(store, now=T0)
    assert (counted("succeeded", "reset"), counted("failed", "manual_failed")) == (1.0, 1.0)


def test_done_and_failed_refuse_a_request_not_waiting_for_a_person(store: Store) -> None:
    request_id, state = submit(processor(store, require_approval=True), "h3")
    assert state == "awaiting_approval"
    with pytest.raises(ActionRefused, match="awaiting_manual_reset"):
        actions.mark_done(store, request_id, by="Kees", support_address=SUPPORT,
                          templates=TEMPLATES)
    with pytest.raises(ActionRefused, match="awaiting_manual_reset"):
        actions.mark_failed(store, request_id, by="Kees", reason="x", support_address=SUPPORT,
                            templates=TEMPLATES)
    assert replies(store, request_id) == []


# -- executor results reach the right state and reply ------------------------------------------


@pytest.mark.parametrize(
    ("account", "state", "code", "kind"),
    [
        (ACCOUNT, "executed", "reset", "confirmation"),
        ("nobody@example.nl", "execution_failed", "account_not_found", "failed"),
        ("no.2fa@example.nl", "execution_failed", "two_factor_not_enabled", "failed"),
    ],
)
def test_http_results_reach_the_right_state_and_reply(
    store: Store, forus: FakeForus, account: str, state: str, code: str, kind: str
) -> None:
    request_id, _ = submit(processor(store), "r1", account=account)
    assert run_executions(store, http_executor(forus)) == 1
    row = request_row(store, request_id)
    assert (row.state, row.result_code) == (state, code)
    assert [r.kind for r in row.outbox] == [kind]


def test_http_already_reset_is_a_confirmation(store: Store, forus: FakeForus) -> None:
    proc = processor(store)
    submit(proc, "r2")
    run_executions(store, http_executor(forus))
    second, _ = submit(proc, "r3")  # another request for the same account, other key
    run_executions(store, http_executor(forus))
    row = request_row(store, second)
    assert (row.state, row.result_code) == ("executed", "already_reset")
    assert [r.kind for r in row.outbox] == ["confirmation"]
    assert forus.resets[ACCOUNT] == 1


def test_http_retry_then_success_confirms_once(store: Store, forus: FakeForus) -> None:
    request_id, _ = submit(processor(store), "r4")
    forus.fail_next(500)
    run_executions(store, http_executor(forus))
    assert request_row(store, request_id).state == "complete"
    assert replies(store, request_id) == []
    ExecutionWorker(store, http_executor(forus), SUPPORT,
                    clock=lambda: T0 + timedelta(hours=1), templates=TEMPLATES).run_due()
    row = request_row(store, request_id)
    assert (row.state, row.result_code) == ("executed", "reset")
    assert [r.kind for r in row.outbox] == ["confirmation"]
    [key] = {p.headers["idempotency-key"] for p in forus.posts()}
    assert key == f"reset-mailbot:{request_id}"


def _seed(db: ForusDatabase, email: str = ACCOUNT, *, factors: int = 1) -> None:
    identity = db.add_identity(email)
    for _ in range(factors):
        factor = db.add_2fa(identity)
        db.add_code(factor)
        db.add_proxy(identity, factor)


@pytest.mark.parametrize(
    ("seed", "state", "code", "kind"),
    [
        ("one", "executed", "reset", "confirmation"),
        ("none", "execution_failed", "account_not_found", "failed"),
        ("two", "execution_failed", "ambiguous_account", "failed"),
        ("off", "execution_failed", "two_factor_not_enabled", "failed"),
    ],
)
def test_forus_db_results_reach_the_right_state_and_reply(
    store: Store, forus_db: ForusDatabase, seed: str, state: str, code: str, kind: str
) -> None:
    if seed in ("one", "two"):
        _seed(forus_db)
    if seed == "two":
        _seed(forus_db)
    if seed == "off":
        _seed(forus_db, factors=0)
    request_id, _ = submit(processor(store, executor_kind="forus-db"), "f1")
    with ForusDbExecutor(forus_db.url) as executor:
        assert run_executions(store, executor) == 1
    row = request_row(store, request_id)
    assert (row.state, row.result_code) == (state, code)
    assert [r.kind for r in row.outbox] == [kind]
    events = forus_db.rows("event_logs")
    assert len(events) == (1 if seed == "one" else 0)


# -- dry run ------------------------------------------------------------------------------------


def test_http_dry_run_changes_nothing(store: Store, forus: FakeForus) -> None:
    request_id, _ = submit(processor(store, require_approval=True), "y1")
    state, result = actions.dry_run(store, request_id, http_executor(forus))
    assert state == "awaiting_approval"
    assert (result.status, result.code) == (ExecutionStatus.SUCCEEDED, "reset")
    assert result.detail.startswith("dry run:")
    [post] = forus.posts()
    assert post.body is not None and post.body["dry_run"] is True
    assert post.headers["idempotency-key"] == f"reset-mailbot:{request_id}:dry-run"
    assert forus.resets[ACCOUNT] == 0 and forus.accounts[ACCOUNT] is True
    assert forus.dry_runs == 1
    # the real reset afterwards is not a replay of the dry run
    actions.approve(store, request_id, by="Petra", executor=http_executor(forus),
                    support_address=SUPPORT, clock=lambda: T0, templates=TEMPLATES)
    assert request_row(store, request_id).result_code == "reset"
    assert forus.resets[ACCOUNT] == 1
    _, after = actions.dry_run(store, request_id, http_executor(forus))
    assert after.code == "already_reset"


def test_http_dry_run_reports_failures(store: Store, forus: FakeForus) -> None:
    request_id, _ = submit(processor(store, require_approval=True), "y2",
                           account="nobody@example.nl")
    _, result = actions.dry_run(store, request_id, http_executor(forus))
    assert (result.status, result.code) == (ExecutionStatus.FAILED, "account_not_found")


def test_http_dry_run_ignored_by_the_endpoint_is_never_reported_as_a_plan(
    forus: FakeForus,
) -> None:
    forus.fail_next(200, {"status": "reset"})  # an endpoint that does not know dry_run
    job = ExecutionJob(request_id="R-TEST", idempotency_key="reset-mailbot:R-TEST",
                       account_email=ACCOUNT, municipality="Utrecht", requested_by=SENDER)
    result = http_executor(forus).dry_run(job)
    assert (result.status, result.code) == (ExecutionStatus.FAILED, "dry_run_ignored")
    assert "may have carried out the reset" in result.detail


def test_forus_db_dry_run_names_the_rows_and_changes_nothing(
    store: Store, forus_db: ForusDatabase
) -> None:
    _seed(forus_db, factors=2)
    request_id, _ = submit(processor(store, require_approval=True), "y3")
    before = forus_db.snapshot()
    with ForusDbExecutor(forus_db.url) as executor:
        state, result = actions.dry_run(store, request_id, executor)
    assert forus_db.snapshot() == before
    assert state == "awaiting_approval"
    assert (result.status, result.code) == (ExecutionStatus.SUCCEEDED, "reset")
    assert "would deactivate 2 factor(s)" in result.detail
    assert "2 active code(s)" in result.detail and "revoke 2 active session(s)" in result.detail
    for factor in forus_db.rows("identity_2fa"):
        assert factor["uuid"] in result.detail
        assert factor["secret"] not in result.detail
    assert request_row(store, request_id).state == "awaiting_approval"
    # after the real reset, the dry run says so
    actions.approve(store, request_id, by="Petra", executor=ForusDbExecutor(forus_db.url),
                    support_address=SUPPORT, clock=lambda: T0, templates=TEMPLATES)
    with ForusDbExecutor(forus_db.url) as executor:
        _, after = actions.dry_run(store, request_id, executor)
    assert after.code == "already_reset"
    assert [e["event"] for e in forus_db.rows("event_logs")] == [EVENT]


def test_forus_db_dry_run_reports_ambiguity(store: Store, forus_db: ForusDatabase) -> None:
    _seed(forus_db)
    _seed(forus_db)
    request_id, _ = submit(processor(store, require_approval=True), "y4")
    with ForusDbExecutor(forus_db.url) as executor:
        _, result = actions.dry_run(store, request_id, executor)
    assert (result.status, result.code) == (ExecutionStatus.FAILED, "ambiguous_account")


def test_manual_dry_run_tells_the_person_what_to_do(store: Store) -> None:
    request_id, _ = submit(processor(store, executor_kind="manual"), "y5")
    _, result = actions.dry_run(store, request_id, ManualExecutor())
    assert result.status is ExecutionStatus.PENDING_HUMAN
    assert ACCOUNT in result.detail
    assert f"reset-mailbot requests done {request_id}" in result.detail
