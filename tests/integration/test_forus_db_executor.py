"""ForusDbExecutor against a real MariaDB with the Forus tables (reset_mailbot_testing/mariadb.py).

Every test runs the executor as the least-privilege user the fixture creates with exactly the
documented GRANTs; root is only used to seed, inspect and to play "another connection".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from reset_mailbot.adapters.executors.base import (
    ExecutionJob,
    ExecutionResult,
    ExecutionStatus,
    Executor,
)
from reset_mailbot.adapters.executors.forus_db import (
    EVENT,
    REQUIRED_PRIVILEGES,
    ForusDbError,
    ForusDbExecutor,
    grant_statements,
    marker,
)
from reset_mailbot_testing import mariadb
from reset_mailbot_testing.mariadb import HOST, ForusDatabase, Identity, free_port

pytestmark = pytest.mark.services

ACCOUNT = "fam.ozturk@outlook.com"
DOC = Path(__file__).resolve().parents[2] / "docs" / "executor-forus-db.md"

MakeExecutor = Callable[..., ForusDbExecutor]


def _job(
    request_id: str = "R-7KQ2M4XA",
    account: str = ACCOUNT,
    key: str | None = None,
) -> ExecutionJob:
    return ExecutionJob(
        request_id=request_id,
        idempotency_key=key or f"reset-mailbot:{request_id}",
        account_email=account,
        municipality="Utrecht",
        requested_by="j.jansen@utrecht.nl",
        requested_by_name="Jan Jansen",
        case_reference="2026-00871",
        message_id="<AM9PR09MB1509BB531DBEC6AC9D77CFE54014@AM9PR09MB1509.eurprd09.prod.outlook.com>",
        approved_by="p.devries@forus.io",
    )


@pytest.fixture
def make_executor(forus_db: ForusDatabase) -> Iterator[MakeExecutor]:
    """Executors on the least-privilege URL, closed after the test."""
    made: list[ForusDbExecutor] = []

    def make(url: str | None = None, **kwargs: Any) -> ForusDbExecutor:
        executor = ForusDbExecutor(url or forus_db.url, **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()


@pytest.fixture
def bystander(forus_db: ForusDatabase) -> Identity:
    """Another resident with 2FA and a session: nothing of theirs may ever change."""
    other = forus_db.add_identity("someone.else@example.nl")
    factor = forus_db.add_2fa(other)
    forus_db.add_code(factor)
    forus_db.add_proxy(other, factor)
    return other


def _seed_resident(db: ForusDatabase, email: str = ACCOUNT) -> dict[str, Any]:
    """An active authenticator, a pending phone factor with codes, sessions old and new."""
    resident = db.add_identity(email)
    db.add_email(resident, "old.address@example.nl", primary=False)
    app = db.add_2fa(resident, state="active")
    phone = db.add_2fa(resident, state="pending", phone="+31612345678")
    old_phone = db.add_2fa(resident, state="deactivated", phone="+31600000000", deleted=True)
    return {
        "identity": resident,
        "app": app,
        "phone": phone,
        "old_phone": old_phone,
        "code_active": db.add_code(phone, state="active"),
        "code_used": db.add_code(phone, state="deactivated"),
        "proxy_2fa": db.add_proxy(resident, app),
        "proxy_plain": db.add_proxy(resident, None),
        "proxy_pending": db.add_proxy(resident, None, state="pending"),
        "proxy_destroyed": db.add_proxy(resident, app, state="destroyed"),
    }


def _by(rows: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any]:
    return next(r for r in rows if r[key] == value)


def _without(snapshot: dict[str, list[dict[str, Any]]], address: str) -> dict[str, Any]:
    """The snapshot minus the rows of one identity (to show the others are untouched)."""
    return {
        table: [r for r in rows if r.get("identity_address", r.get("address")) != address]
        for table, rows in snapshot.items()
        if table != "identity_2fa_codes"
    }


def _amsterdam_now() -> datetime:
    return datetime.now(ZoneInfo("Europe/Amsterdam")).replace(tzinfo=None)


def _assert_clean(result: ExecutionResult, *secrets: str) -> None:
    """No secret, token or account address leaks into what we log and store."""
    for secret in secrets:
        assert secret not in result.detail


# -- the reset ---------------------------------------------------------------------------


def test_implements_the_executor_protocol(make_executor: MakeExecutor) -> None:
    executor: Executor = make_executor()
    assert executor.name == "forus-db"
    assert "***" in repr(executor) and "mailbot" in repr(executor)


def test_reset_deactivates_factors_codes_and_sessions(
    forus_db: ForusDatabase, make_executor: MakeExecutor, bystander: Identity
) -> None:
    seed = _seed_resident(forus_db)
    resident: Identity = seed["identity"]
    before = forus_db.snapshot()
    counts = forus_db.counts()

    result = make_executor().execute(_job())

    assert result.status is ExecutionStatus.SUCCEEDED, result
    assert result.code == "reset"
    assert "deactivated 2 factor(s) and 1 code(s), revoked 2 session(s)" in result.detail
    after = forus_db.snapshot()
    assert forus_db.counts() == counts | {"event_logs": 1}  # nothing hard-deleted
    now = _amsterdam_now()

    factors_before = before["identity_2fa"]
    for name in ("app", "phone"):
        row = _by(after["identity_2fa"], "uuid", seed[name])
        old = _by(factors_before, "uuid", seed[name])
        assert row["state"] == "deactivated"
        assert row["deactivation_code"] == "mailbot:R-7KQ2M4XA"
        assert abs(row["deleted_at"] - now) < timedelta(minutes=1)
        assert row["updated_at"] == row["deleted_at"]
        for untouched in ("secret", "secret_url", "code", "phone", "created_at"):
            assert row[untouched] == old[untouched]
    assert _by(after["identity_2fa"], "uuid", seed["old_phone"]) == _by(
        factors_before, "uuid", seed["old_phone"]
    )

    codes = after["identity_2fa_codes"]
    assert _by(codes, "id", seed["code_active"])["state"] == "deactivated"
    assert _by(codes, "id", seed["code_used"]) == _by(
        before["identity_2fa_codes"], "id", seed["code_used"]
    )

    proxies = after["identity_proxies"]
    for name in ("proxy_2fa", "proxy_plain"):
        row = _by(proxies, "id", seed[name])
        assert row["state"] == "terminated"
        assert row["deleted_at"] is not None
        assert (
            row["access_token"] == _by(before["identity_proxies"], "id", seed[name])["access_token"]
        )
    for name in ("proxy_pending", "proxy_destroyed"):
        assert _by(proxies, "id", seed[name]) == _by(before["identity_proxies"], "id", seed[name])

    (event,) = after["event_logs"]
    assert event["loggable_type"] == "identity"
    assert event["loggable_id"] == resident.id
    assert event["event"] == EVENT
    assert event["identity_address"] == resident.address
    assert event["original"] == 1
    data = json.loads(event["data"])
    assert data == {
        "source": "reset-mailbot",
        "request_id": "R-7KQ2M4XA",
        "idempotency_key": "reset-mailbot:R-7KQ2M4XA",
        "marker": "mailbot:R-7KQ2M4XA",
        "municipality": "Utrecht",
        "requested_by": "j.jansen@utrecht.nl",
        "requested_by_name": "Jan Jansen",
        "approved_by": "p.devries@forus.io",
        "case_reference": "2026-00871",
        "message_id": _job().message_id,
        "factors_deactivated": 2,
        "codes_deactivated": 1,
        "sessions_revoked": 2,
        "revoke_sessions": True,
    }
    # The bystander's rows (and the identities/e-mail tables) are exactly as they were.
    assert _without(after, resident.address) == _without(before, resident.address)
    assert after["identities"] == before["identities"]
    assert after["identity_emails"] == before["identity_emails"]
    _assert_clean(result, ACCOUNT, "+316", "JBSWY3DPEHPK3PXP")


def test_row_counts_never_drop(forus_db: ForusDatabase, make_executor: MakeExecutor) -> None:
    """Soft deletes only: every table keeps its rows; event_logs gains exactly one."""
    _seed_resident(forus_db)
    counts = forus_db.counts()
    executor = make_executor()
    assert executor.execute(_job()).code == "reset"
    assert executor.execute(_job()).code == "already_reset"
    assert forus_db.counts() == counts | {"event_logs": counts["event_logs"] + 1}


def test_email_is_matched_case_insensitively(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    resident = forus_db.add_identity("Fam.Ozturk@Outlook.COM")
    forus_db.add_2fa(resident)
    result = make_executor().execute(_job(account=" fam.ozturk@OUTLOOK.com "))
    assert (result.status, result.code) == (ExecutionStatus.SUCCEEDED, "reset")


def test_accent_insensitive_collation_does_not_match_another_address(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    """utf8mb4_unicode_ci says 'josé' = 'jose'; an e-mail address does not."""
    resident = forus_db.add_identity("josé@example.nl")
    forus_db.add_2fa(resident)
    result = make_executor().execute(_job(account="jose@example.nl"))
    assert result.code == "account_not_found"
    assert make_executor().execute(_job(account="JOSÉ@example.nl")).code == "reset"


@pytest.mark.parametrize(
    "setup",
    ["non_primary", "deleted", "unknown", "identity_row_missing"],
)
def test_account_not_found(
    forus_db: ForusDatabase, make_executor: MakeExecutor, bystander: Identity, setup: str
) -> None:
    if setup == "non_primary":
        resident = forus_db.add_identity("primary@example.nl")
        forus_db.add_email(resident, ACCOUNT, primary=False)
        forus_db.add_2fa(resident)
    elif setup == "deleted":
        resident = forus_db.add_identity(ACCOUNT, deleted=True)
        forus_db.add_email(resident, "new@example.nl")
        forus_db.add_2fa(resident)
    elif setup == "identity_row_missing":
        # Laravel does not always have the FK; simulate an orphaned e-mail row.
        with forus_db.engine.begin() as conn:
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
            conn.execute(
                sa.text(
                    "INSERT INTO identity_emails (identity_address, email, `primary`)"
                    " VALUES ('0xdeadbeef', :e, 1)"
                ),
                {"e": ACCOUNT},
            )
    before = forus_db.snapshot()
    result = make_executor().execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.FAILED, "account_not_found")
    assert forus_db.snapshot() == before
    _assert_clean(result, ACCOUNT)


def test_two_identities_with_the_same_primary_email_are_ambiguous(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    first = forus_db.add_identity(ACCOUNT)
    second = forus_db.add_identity(ACCOUNT.upper())
    for identity in (first, second):
        factor = forus_db.add_2fa(identity)
        forus_db.add_code(factor)
        forus_db.add_proxy(identity, factor)
    before = forus_db.snapshot()
    result = make_executor().execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.FAILED, "ambiguous_account")
    assert "2 identities" in result.detail
    assert forus_db.snapshot() == before


def test_duplicate_email_rows_of_one_identity_are_not_ambiguous(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    resident = forus_db.add_identity(ACCOUNT)
    forus_db.add_email(resident, ACCOUNT.title())
    forus_db.add_2fa(resident)
    assert make_executor().execute(_job()).code == "reset"


@pytest.mark.parametrize("factor", ["none", "deactivated_not_deleted", "active_but_deleted"])
def test_two_factor_not_enabled(
    forus_db: ForusDatabase, make_executor: MakeExecutor, factor: str
) -> None:
    resident = forus_db.add_identity(ACCOUNT)
    forus_db.add_proxy(resident)
    if factor == "deactivated_not_deleted":
        forus_db.add_2fa(resident, state="deactivated")
    elif factor == "active_but_deleted":
        forus_db.add_2fa(resident, state="active", deleted=True)
    before = forus_db.snapshot()
    result = make_executor().execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.FAILED, "two_factor_not_enabled")
    assert forus_db.snapshot() == before


# -- idempotency and concurrency -----------------------------------------------------------


def test_second_run_of_the_same_job_is_already_reset_and_changes_nothing(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    _seed_resident(forus_db)
    assert make_executor().execute(_job()).code == "reset"
    after_first = forus_db.snapshot()
    result = make_executor().execute(_job())  # a new executor: as after a daemon restart
    assert (result.status, result.code) == (ExecutionStatus.SUCCEEDED, "already_reset")
    assert forus_db.snapshot() == after_first
    assert len(after_first["event_logs"]) == 1


def test_rerun_after_the_resident_enrolled_again_leaves_the_new_factor_alone(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    seed = _seed_resident(forus_db)
    executor = make_executor()
    assert executor.execute(_job()).code == "reset"
    new_factor = forus_db.add_2fa(seed["identity"], state="active")
    forus_db.add_proxy(seed["identity"], new_factor)
    before = forus_db.snapshot()

    result = executor.execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.SUCCEEDED, "already_reset")
    assert "1 factor(s) enrolled since were left alone" in result.detail
    assert forus_db.snapshot() == before

    # A different request for the same account is a new reset.
    again = executor.execute(_job(request_id="R-2BCDEFGH"))
    assert again.code == "reset"
    assert len(forus_db.rows("event_logs")) == 2
    row = _by(forus_db.rows("identity_2fa"), "uuid", new_factor)
    assert (row["state"], row["deactivation_code"]) == ("deactivated", "mailbot:R-2BCDEFGH")


def test_concurrent_runs_of_the_same_job_reset_once(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    """Two daemons execute the same request at once: one resets, the other sees its event."""
    seed = _seed_resident(forus_db)
    results: list[ExecutionResult] = []
    executors = [make_executor(lock_timeout_seconds=20) for _ in range(2)]
    with forus_db.engine.connect() as blocker:
        blocker.execute(
            sa.text("SELECT uuid FROM identity_2fa WHERE identity_address = :a FOR UPDATE"),
            {"a": seed["identity"].address},
        ).all()
        threads = [
            threading.Thread(target=lambda e=e: results.append(e.execute(_job())))
            for e in executors
        ]
        for thread in threads:
            thread.start()
        _wait_for_lock_waits(forus_db, 2)
        blocker.rollback()  # both are queued on the same rows; let them go
    for thread in threads:
        thread.join(30)
    assert sorted(r.code for r in results) == ["already_reset", "reset"]
    assert all(r.status is ExecutionStatus.SUCCEEDED for r in results)
    assert len(forus_db.rows("event_logs")) == 1


def _wait_for_lock_waits(db: ForusDatabase, n: int, timeout: float = 10.0) -> list[int]:
    """Connection ids of the executor user blocked in its locking read, once there are `n`."""
    deadline = time.monotonic() + timeout
    while True:
        rows = db.run(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = :u"
            " AND INFO LIKE 'SELECT uuid, state FROM identity_2fa%FOR UPDATE'",
            {"u": db.user},
        )
        if len(rows) >= n:
            return [int(r[0]) for r in rows]
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(rows)} of {n} executors blocked after {timeout} s")
        time.sleep(0.02)


# -- options, failures and privileges --------------------------------------------------------


def test_revoke_sessions_false_leaves_the_proxies(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    seed = _seed_resident(forus_db)
    proxies = forus_db.rows("identity_proxies")
    result = make_executor(revoke_sessions=False).execute(_job())
    assert result.code == "reset"
    assert "revoked 0 session(s)" in result.detail
    assert forus_db.rows("identity_proxies") == proxies
    data = json.loads(forus_db.rows("event_logs")[0]["data"])
    assert (data["sessions_revoked"], data["revoke_sessions"]) == (0, False)
    assert _by(forus_db.rows("identity_2fa"), "uuid", seed["app"])["state"] == "deactivated"


def test_a_lock_held_elsewhere_is_retry_after_the_lock_timeout(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    seed = _seed_resident(forus_db)
    before = forus_db.snapshot()
    executor = make_executor(lock_timeout_seconds=1)
    with forus_db.engine.connect() as blocker:
        blocker.execute(
            sa.text("UPDATE identity_2fa SET updated_at = updated_at WHERE uuid = :u"),
            {"u": seed["phone"]},
        )
        started = time.monotonic()
        result = executor.execute(_job())
        elapsed = time.monotonic() - started
        blocker.rollback()
    assert (result.status, result.code) == (ExecutionStatus.RETRY, "lock_timeout")
    assert "1205" in result.detail
    assert 0.9 < elapsed < 5
    assert forus_db.snapshot() == before
    assert executor.execute(_job()).code == "reset"  # the pooled connection is still usable


def test_a_connection_killed_while_waiting_is_retry(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    seed = _seed_resident(forus_db)
    before = forus_db.snapshot()
    executor = make_executor(lock_timeout_seconds=20)
    results: list[ExecutionResult] = []
    with forus_db.engine.connect() as blocker:
        blocker.execute(
            sa.text("SELECT uuid FROM identity_2fa WHERE identity_address = :a FOR UPDATE"),
            {"a": seed["identity"].address},
        ).all()
        thread = threading.Thread(target=lambda: results.append(executor.execute(_job())))
        thread.start()
        (waiting,) = _wait_for_lock_waits(forus_db, 1)
        forus_db.run(f"KILL CONNECTION {waiting}")
        thread.join(10)
        blocker.rollback()
    (result,) = results
    assert (result.status, result.code) == (ExecutionStatus.RETRY, "connection_error")
    assert forus_db.snapshot() == before
    assert executor.execute(_job()).code == "reset"  # pre-ping replaces the dead connection


def test_server_down_is_retry(forus_db: ForusDatabase, make_executor: MakeExecutor) -> None:
    url = forus_db.url.replace(f":{forus_db.server.port}/", f":{free_port()}/")
    executor = make_executor(url, connect_timeout_seconds=2)
    result = executor.execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.RETRY, "connection_error")
    assert "2003" in result.detail
    assert forus_db.password not in result.detail
    with pytest.raises(ForusDbError, match="2003"):
        executor.probe()


def test_other_sql_errors_fail_and_roll_back(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    """A Forus schema change (here: a column gone) is a permanent failure, half done never."""
    _seed_resident(forus_db)
    forus_db.run("ALTER TABLE event_logs DROP COLUMN original")
    before = forus_db.snapshot()
    result = make_executor().execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.FAILED, "database_error")
    assert "1054" in result.detail and "original" in result.detail
    assert forus_db.snapshot() == before
    _assert_clean(result, ACCOUNT, "j.jansen@utrecht.nl")


def _granted(db: ForusDatabase) -> dict[tuple[str, str], set[str] | None]:
    """{(table, privilege): columns, or None for the whole table} as the server has them."""
    granted: dict[tuple[str, str], set[str] | None] = {}
    where = {"db": db.database, "u": db.user, "h": HOST}
    for table, table_priv in db.run(
        "SELECT Table_name, Table_priv FROM mysql.tables_priv"
        " WHERE Db = :db AND User = :u AND Host = :h",
        where,
    ):
        for privilege in filter(None, str(table_priv).split(",")):
            granted[(table, privilege.upper())] = None
    for table, column, column_priv in db.run(
        "SELECT Table_name, Column_name, Column_priv FROM mysql.columns_priv"
        " WHERE Db = :db AND User = :u AND Host = :h",
        where,
    ):
        for privilege in filter(None, str(column_priv).split(",")):
            columns = granted.setdefault((table, privilege.upper()), set())
            assert columns is not None, f"{table}: both table and column {privilege}"
            columns.add(column)
    return granted


def test_the_user_has_exactly_the_documented_grants(forus_db: ForusDatabase) -> None:
    expected = {
        (table, privilege): None if columns is None else set(columns)
        for table, privileges in REQUIRED_PRIVILEGES.items()
        for privilege, columns in privileges.items()
    }
    assert _granted(forus_db) == expected
    with sa.create_engine(forus_db.url, poolclass=sa.pool.NullPool).connect() as conn:
        grants = [r[0] for r in conn.execute(sa.text("SHOW GRANTS"))]
    (usage,) = [g for g in grants if " ON `" not in g]  # nothing global, nothing on the schema
    assert usage.startswith(f"GRANT USAGE ON *.* TO `{forus_db.user}`@`{HOST}`")
    assert len(grants) == 1 + len(REQUIRED_PRIVILEGES)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT secret FROM identity_2fa",
        "SELECT secret_url FROM identity_2fa",
        "SELECT code FROM identity_2fa",
        "SELECT phone FROM identity_2fa",
        "SELECT access_token FROM identity_proxies",
        "SELECT exchange_token FROM identity_proxies",
        "SELECT code FROM identity_2fa_codes",
        "SELECT * FROM identity_2fa",
        "UPDATE identity_2fa SET secret = NULL",
        "UPDATE identity_2fa SET identity_address = NULL",
        "UPDATE identity_proxies SET access_token = NULL",
        "UPDATE identities SET address = address",
        "UPDATE event_logs SET event = 'x'",
        "DELETE FROM identity_2fa",
        "DELETE FROM identity_proxies",
        "DELETE FROM event_logs",
    ],
)
def test_the_executor_user_cannot_read_secrets_rewrite_or_delete(
    forus_db: ForusDatabase, statement: str
) -> None:
    """Stolen executor credentials give no 2FA secret, no session token and no hard delete."""
    _seed_resident(forus_db)
    before = forus_db.snapshot()
    engine = sa.create_engine(forus_db.url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match=r"114[23]"):
        conn.execute(sa.text(statement))
    assert forus_db.snapshot() == before


def test_probe_passes_with_the_least_privilege_user(make_executor: MakeExecutor) -> None:
    text = make_executor().probe()
    assert "readable" in text and "utf8mb4_unicode_ci" in text
    assert "***" in text


@pytest.mark.parametrize(
    ("revoke", "message"),
    [
        ("UPDATE (`deactivation_code`) ON {db}.`identity_2fa`", "UPDATE right on identity_2fa"),
        ("UPDATE (`deleted_at`) ON {db}.`identity_proxies`", "UPDATE right on identity_proxies"),
        ("UPDATE (`state`) ON {db}.`identity_2fa_codes`", "UPDATE right on identity_2fa_codes"),
        ("INSERT ON {db}.`event_logs`", "no INSERT right on event_logs"),
        ("SELECT (`address`) ON {db}.`identities`", "identities is not readable"),
        ("SELECT (`data`) ON {db}.`event_logs`", "event_logs is not readable"),
    ],
)
def test_probe_names_a_missing_grant(
    forus_db: ForusDatabase, make_executor: MakeExecutor, revoke: str, message: str
) -> None:
    before = forus_db.snapshot()
    forus_db.run(
        f"REVOKE {revoke.format(db=f'`{forus_db.database}`')} FROM '{forus_db.user}'@'{HOST}'"
    )
    with pytest.raises(ForusDbError, match=message):
        make_executor().probe()
    assert forus_db.snapshot() == before


def test_a_missing_grant_at_execution_is_retry_unauthorized(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    _seed_resident(forus_db)
    forus_db.run(
        f"REVOKE INSERT ON `{forus_db.database}`.`event_logs` FROM '{forus_db.user}'@'{HOST}'"
    )
    before = forus_db.snapshot()
    result = make_executor().execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.RETRY, "unauthorized")
    assert forus_db.snapshot() == before


def test_wrong_password_is_retry_unauthorized(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    url = forus_db.url.replace(forus_db.password, "wrong-password")
    result = make_executor(url).execute(_job())
    assert (result.status, result.code) == (ExecutionStatus.RETRY, "unauthorized")
    assert "wrong-password" not in result.detail
    with pytest.raises(ForusDbError, match="1045"):
        make_executor(url).probe()


def test_probe_refuses_a_case_sensitive_email_column(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    forus_db.run("ALTER TABLE identity_emails MODIFY email VARCHAR(191) COLLATE utf8mb4_bin")
    with pytest.raises(ForusDbError, match="utf8mb4_bin"):
        make_executor().probe()


def test_probe_reports_a_missing_table(
    forus_db: ForusDatabase, make_executor: MakeExecutor
) -> None:
    forus_db.run("DROP TABLE identity_proxies")
    with pytest.raises(ForusDbError, match="identity_proxies is not readable"):
        make_executor().probe()


# -- pure parts --------------------------------------------------------------------------


def test_marker_fits_the_column() -> None:
    assert marker(_job()) == "mailbot:R-7KQ2M4XA"
    assert marker(_job(request_id="R-ABCDEFGHIJ")) == "mailbot:R-ABCDEFGHIJ"  # 20: fits
    long_a = marker(_job(request_id="request-0000000001"))
    long_b = marker(_job(request_id="request-0000000002"))
    assert long_a != long_b  # not a cut-off prefix shared by every long id
    assert all(len(m) == 20 and m.startswith("mailbot:") for m in (long_a, long_b))
    assert len(marker(_job(request_id="R-é" * 3))) == 20  # non-ASCII id: hashed


def test_url_must_be_pymysql_with_a_database() -> None:
    with pytest.raises(ValueError, match="mysql\\+pymysql"):
        ForusDbExecutor("postgresql://u:p@localhost/forus")
    with pytest.raises(ValueError, match="no database"):
        ForusDbExecutor("mysql+pymysql://u:p@localhost")


def test_docs_list_the_same_grants() -> None:
    text = DOC.read_text(encoding="utf-8")
    for statement in grant_statements("forus", "'reset_mailbot'@'10.0.0.5'"):
        assert statement in text


# -- the harness itself ------------------------------------------------------------------


def test_harness_fails_clearly_without_mariadb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mariadb, "_SERVER_NAMES", ("no-such-mariadbd",))
    with pytest.raises(mariadb.MariaDbError, match=r"install-test-deps\.sh"):
        mariadb.MariaDbServer(tmp_path / "reset-mailbot-mariadb-1").start()


def test_harness_removes_roots_of_dead_runs(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"reset-mailbot-mariadb-{dead.pid}"
    (stale / "data").mkdir(parents=True)
    (stale / "mysqld.pid").write_text(str(os.getpid()))  # not a mariadbd: must not be killed
    alive = tmp_path / f"reset-mailbot-mariadb-{os.getpid()}"
    alive.mkdir()
    assert mariadb.remove_stale_roots(tmp_path) == [stale]
    assert not stale.exists() and alive.exists()


def test_harness_retries_when_the_free_port_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process may bind the 'free' port before mariadbd does: start again elsewhere."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        real_free_port = mariadb.free_port
        monkeypatch.setattr(mariadb, "free_port", lambda: next(ports, None) or real_free_port())
        # Not under tmp_path: pytest's 0700 directories keep the mysql user out.
        root = mariadb.default_root().parent / f"reset-mailbot-mariadb-porttest-{os.getpid()}"
        server = mariadb.MariaDbServer(root)
        try:
            server.start()
            assert server.port != taken.getsockname()[1]
            server.admin().close()
        finally:
            server.stop()
    assert not server.root.exists()
