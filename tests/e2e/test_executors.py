"""Issue #5 end to end: the approval gate, the manual executor, the limits, dry runs and the
forus-db executor, with the daemon and the `requests` commands as separate processes against
real Dovecot, SMTP, DNS, the fake Forus HTTP endpoint or MariaDB, and SQLite/PostgreSQL.

Executor settings go through the environment (RESET_MAILBOT_EXECUTOR__*), exactly as an
operator can override any key, so `DaemonEnv` needs no changes for them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from reset_mailbot_testing.mariadb import ForusDatabase
from tests.e2e.daemon_env import CLI, DaemonEnv

pytestmark = pytest.mark.services

ACCOUNT = "piet.jansen@hotmail.com"
SENDER = "j.devries@utrecht.nl"


def body(account: str = ACCOUNT, case: str = "88123") -> str:
    return (
        "Beste Forus support,\r\n\r\n"
        f"E-mailadres account: {account}\r\n"
        "De identiteit van de inwoner is vandaag aan de balie gecontroleerd met een paspoort.\r\n"
        "Hierbij geeft de gemeente Utrecht opdracht om de 2FA te resetten.\r\n"
        f"Dossiernummer: {case}\r\n\r\n"
        "Met vriendelijke groet,\r\nJan de Vries\r\n"
    )


def kinds(env: DaemonEnv) -> list[str]:
    return [str(m["X-Reset-Mailbot"]) for m in env.replies()]


def text_of(env: DaemonEnv, kind: str) -> str:
    [reply] = [m for m in env.replies() if m["X-Reset-Mailbot"] == kind]
    plain = next(p for p in reply.walk() if p.get_content_type() == "text/plain")
    payload = plain.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(plain.get_content_charset() or "utf-8")


def only_request(env: DaemonEnv) -> tuple[str, str]:
    [(request_id, state)] = env.sql("select id, state from requests")
    return str(request_id), str(state)


def executor_env(env: DaemonEnv, **settings: object) -> None:
    for key, value in settings.items():
        rendered = str(value).lower() if isinstance(value, bool) else str(value)
        env.extra_env[f"RESET_MAILBOT_EXECUTOR__{key.upper()}"] = rendered


@pytest.fixture
def forus_db_env(env: DaemonEnv, forus_db: ForusDatabase) -> Iterator[DaemonEnv]:
    """The daemon with `kind = "forus-db"` on the test's MariaDB (least-privilege user)."""
    env.executor = "forus-db"
    executor_env(env, url=forus_db.url)
    yield env


def seed_resident(db: ForusDatabase, email: str = ACCOUNT) -> None:
    identity = db.add_identity(email)
    factor = db.add_2fa(identity)
    db.add_code(factor)
    db.add_proxy(identity, factor)


# -- four-eyes gate, HTTP -----------------------------------------------------------------------


def test_approval_gate_holds_then_approve_resets_once_and_names_the_approver(
    env: DaemonEnv,
) -> None:
    env.require_approval = True
    env.deliver(env.request(body()))
    env.run_once()
    request_id, state = only_request(env)
    assert state == "awaiting_approval"
    assert env.forus.posts() == [] and env.replies() == []

    refused = env.cli("requests", "approve", request_id, "--by", SENDER.upper(), check=False)
    assert refused.returncode == 1
    assert "a second person must approve" in refused.stderr
    assert env.forus.posts() == []

    approved = env.cli("requests", "approve", request_id, "--by", "Petra de Boer")
    assert "executed" in approved.stdout
    assert env.forus.resets[ACCOUNT] == 1
    env.run_once()  # the queued confirmation goes out with the daemon's outbox job
    assert kinds(env) == ["confirmation"]
    assert "Petra de Boer" in text_of(env, "confirmation")
    assert env.sql("select actor from audit_log where event = 'state_changed' and "
                   "request_id = :r and actor != 'system'", r=request_id) == [("Petra de Boer",)]
    env.run_once()
    assert len(env.forus.posts()) == 1 and len(env.replies()) == 1


def test_deny_sends_the_reason_and_nothing_is_reset(env: DaemonEnv) -> None:
    env.require_approval = True
    env.deliver(env.request(body()))
    env.run_once()
    request_id, _ = only_request(env)
    env.cli("requests", "deny", request_id, "--by", "Petra de Boer",
            "--reason", "Het dossiernummer is bij ons niet bekend")
    env.run_once()
    assert kinds(env) == ["denied"]
    assert "Het dossiernummer is bij ons niet bekend" in text_of(env, "denied")
    assert only_request(env)[1] == "denied"
    assert env.forus.posts() == []
    again = env.cli("requests", "approve", request_id, "--by", "Someone Else", check=False)
    assert again.returncode == 1 and "is denied" in again.stderr


# -- manual executor ----------------------------------------------------------------------------


def test_manual_done_confirms(env: DaemonEnv) -> None:
    env.executor = "manual"
    env.deliver(env.request(body()))
    env.run_once()
    request_id, state = only_request(env)
    assert state == "awaiting_manual_reset"
    assert env.replies() == []
    plan = env.cli("requests", "dry-run", request_id)
    assert "a person must reset it" in plan.stdout and ACCOUNT in plan.stdout
    env.cli("requests", "done", request_id, "--by", "Kees", "--note", "back office")
    env.run_once()
    assert kinds(env) == ["confirmation"]
    assert only_request(env)[1] == "executed"
    assert env.sql("select actor from audit_log where event = 'state_changed'"
                   " and actor = 'Kees'") == [("Kees",)]
    twice = env.cli("requests", "done", request_id, "--by", "Kees", check=False)
    assert twice.returncode == 1 and "is executed" in twice.stderr


def test_manual_failed_explains_the_reason(env: DaemonEnv) -> None:
    env.executor = "manual"
    env.deliver(env.request(body()))
    env.run_once()
    request_id, _ = only_request(env)
    env.cli("requests", "failed", request_id, "--by", "Kees",
            "--reason", "Dit account is op verzoek van de inwoner opgeheven")
    env.run_once()
    assert kinds(env) == ["failed"]
    assert "Dit account is op verzoek van de inwoner opgeheven" in text_of(env, "failed")
    assert only_request(env)[1] == "execution_failed"


def test_unknown_request_is_refused(env: DaemonEnv) -> None:
    proc = env.cli("requests", "done", "R-NOTTHERE", "--by", "Kees", check=False)
    assert proc.returncode == 1 and "no request R-NOTTHERE" in proc.stderr


# -- limits -------------------------------------------------------------------------------------


def test_over_the_municipality_limit_waits_with_rate_limited(env: DaemonEnv) -> None:
    executor_env(env, max_resets_per_municipality_per_day=2)
    accounts = [f"inwoner{n}@hotmail.com" for n in range(3)]
    for account in accounts:
        env.forus.accounts[account] = True
        env.deliver(env.request(body(account)))
    proc = env.run_once()
    assert sum(env.forus.resets.values()) == 2
    assert sorted(env.sql("select state, result_code from requests")) == [
        ("awaiting_approval", "rate_limited"), ("executed", "reset"), ("executed", "reset"),
    ]
    assert '"event": "rate_limited"' in proc.stderr and '"level": "warning"' in proc.stderr
    [(held,)] = env.sql("select id from requests where state = 'awaiting_approval'")
    env.cli("requests", "approve", str(held), "--by", "Petra de Boer")
    assert sum(env.forus.resets.values()) == 3


def test_third_reset_of_an_account_in_30_days_waits(env: DaemonEnv) -> None:
    for n in range(3):
        env.deliver(env.request(body(case=f"9{n}")))
        env.run_once()
        env.forus.accounts[ACCOUNT] = True  # the resident enabled 2FA again
    states = env.sql("select state, result_code from requests order by created_at")
    assert [s for s, _ in states].count("executed") == 2
    assert states[-1] == ("awaiting_approval", "rate_limited")
    assert len(env.forus.posts()) == 2


def test_staff_account_waits_with_staff_account(env: DaemonEnv) -> None:
    env.deliver(env.request(body("m.bakker@utrecht.nl")))
    env.run_once()
    assert env.sql("select state, result_code from requests") == [
        ("awaiting_approval", "staff_account")
    ]
    assert env.forus.posts() == []


# -- forus-db -----------------------------------------------------------------------------------


def test_forus_db_approval_with_dry_run_first(
    forus_db_env: DaemonEnv, forus_db: ForusDatabase
) -> None:
    env = forus_db_env
    env.require_approval = True
    seed_resident(forus_db)
    env.deliver(env.request(body()))
    env.run_once()
    request_id, state = only_request(env)
    assert state == "awaiting_approval"
    before = forus_db.snapshot()
    plan = env.cli("requests", "dry-run", request_id)
    assert "would return: succeeded reset" in plan.stdout
    assert "would deactivate 1 factor(s)" in plan.stdout
    assert forus_db.snapshot() == before
    env.cli("requests", "approve", request_id, "--by", "Petra de Boer")
    env.run_once()
    assert only_request(env)[1] == "executed"
    [factor] = forus_db.rows("identity_2fa")
    assert factor["state"] == "deactivated" and factor["deleted_at"] is not None
    assert len(forus_db.rows("event_logs")) == 1
    assert kinds(env) == ["confirmation"]
    assert "Petra de Boer" in text_of(env, "confirmation")


@pytest.mark.parametrize(
    ("seed", "state", "code", "kind"),
    [
        ("none", "execution_failed", "account_not_found", "failed"),
        ("two", "execution_failed", "ambiguous_account", "failed"),
        ("off", "execution_failed", "two_factor_not_enabled", "failed"),
    ],
)
def test_forus_db_failures_reach_the_municipality(
    forus_db_env: DaemonEnv, forus_db: ForusDatabase, seed: str, state: str, code: str,
    kind: str,
) -> None:
    if seed == "two":
        seed_resident(forus_db)
        seed_resident(forus_db)
    if seed == "off":
        forus_db.add_identity(ACCOUNT)
    forus_db_env.deliver(forus_db_env.request(body()))
    forus_db_env.run_once()
    assert forus_db_env.sql("select state, result_code from requests") == [(state, code)]
    assert kinds(forus_db_env) == [kind]
    assert forus_db.rows("event_logs") == []


def test_forus_db_crash_between_their_commit_and_ours_resets_once(
    forus_db_env: DaemonEnv, forus_db: ForusDatabase
) -> None:
    env = forus_db_env
    seed_resident(forus_db)
    env.deliver(env.request(body()))
    assert env.run_once(failpoint="after_execute", check=False).returncode == 137
    assert len(forus_db.rows("event_logs")) == 1  # Forus committed; we never recorded it
    assert only_request(env)[1] == "executing"
    env.sql("update executions set claimed_at = :t", t="2000-01-01 00:00:00")  # lease over
    env.run_once()
    assert env.sql(
        "select requests.state, requests.result_code, executions.attempts from requests"
        " join executions on executions.request_id = requests.id"
    ) == [("executed", "already_reset", 2)]
    assert len(forus_db.rows("event_logs")) == 1
    assert kinds(env) == ["confirmation"]
    env.run_once()
    assert len(env.replies()) == 1


def test_two_daemons_at_once_reset_once(
    forus_db_env: DaemonEnv, forus_db: ForusDatabase
) -> None:
    env = forus_db_env
    seed_resident(forus_db)
    env.deliver(env.request(body()))
    # decide and claim, then die: the execution is due again for whoever comes first
    assert env.run_once(failpoint="after_claim_execution", check=False).returncode == 137
    env.sql("update executions set claimed_at = :t", t="2000-01-01 00:00:00")
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    process_env.update(env.extra_env)
    daemons = [
        subprocess.Popen(
            [*CLI, "run", "--once", "--config", str(env.config_path)],
            env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    for daemon in daemons:
        _, err = daemon.communicate(timeout=120)
        assert daemon.returncode == 0, err
    assert only_request(env)[1] == "executed"
    assert len(forus_db.rows("event_logs")) == 1
    [factor] = forus_db.rows("identity_2fa")
    assert factor["state"] == "deactivated"
    assert kinds(env) == ["confirmation"]
