"""The forus-db executor: resets 2FA by writing directly into Forus's own (MySQL/MariaDB) database.

This is what a Forus support employee does by hand today, done the same way every time. It
bypasses Forus's application logic, so it does only the minimum the self-service deactivation
does (see docs/executor-forus-db.md for the risks and the GRANTs):

1. find the identity whose primary, non-deleted `identity_emails.email` is the account address
   (the collation narrows the candidates through the index; an exact lower-case comparison in
   Python then drops what an accent-insensitive collation would also match: `é` = `e`).
   No identity -> FAILED `account_not_found`; several -> FAILED `ambiguous_account` (a person
   must choose; nothing is changed);
2. lock its non-deleted `identity_2fa` rows (`SELECT ... FOR UPDATE`, never the secret columns);
3. if an `event_logs` row `2fa_reset_by_support` for this identity carries this request id, the
   reset already happened -> SUCCEEDED `already_reset` and nothing is touched (even when the
   resident has enrolled a new factor since: resetting again would undo their work);
4. no pending/active factor -> FAILED `two_factor_not_enabled`;
5. otherwise soft-delete them: `state='deactivated'`, `deactivation_code` = marker, `deleted_at`
   and `updated_at` = now; deactivate their active `identity_2fa_codes`; when `revoke_sessions`,
   terminate and soft-delete the identity's active `identity_proxies` (logged-in sessions);
   insert one `event_logs` row; commit -> SUCCEEDED `reset`.

All of it is one READ COMMITTED transaction. READ COMMITTED matters for the concurrent case: a
second run of the same request waits on the row locks, and after the first one commits it must
see that run's event row (under REPEATABLE READ its older snapshot would not). Nothing is ever
hard-deleted: codes and proxies reference `identity_2fa` with ON DELETE RESTRICT, and Forus keeps
history through soft deletes.

Marker: `deactivation_code` (varchar(20)) gets `mailbot:` + the request id (`mailbot:R-7KQ2M4XA`),
which identifies the request in the back office without a join; see `marker()`.

Timestamps are naive local times in `timezone` (default Europe/Amsterdam, forus-backend's
`config/app.php`), as Laravel writes them.

Errors: lock wait timeout, deadlock, lost or refused connections -> RETRY; access denied or a
missing GRANT -> RETRY `unauthorized` (a configuration problem, like HTTP 401/403: the service
alerts and retries slowly); any other SQL error -> FAILED `database_error`. The transaction is
rolled back in every error case and `execute` never raises for database errors. Details carry the
server's error number and message, never the SQL parameters (e-mail addresses) or secrets.

Why one module of ~560 lines: the five steps above are one transaction against a schema we do
not own; keeping every statement, lock and marker of it in one file is what lets a reviewer
check the whole write path against docs/executor-forus-db.md in one reading.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from reset_mailbot.adapters.executors.base import (
    ExecutionJob,
    ExecutionResult,
    ExecutionStatus,
)

EVENT = "2fa_reset_by_support"
MARKER_PREFIX = "mailbot:"
MARKER_LENGTH = 20  # identity_2fa.deactivation_code is varchar(20)

# Exactly what the executor needs (documented in docs/executor-forus-db.md): per table, per
# privilege, the columns (None: the whole table). Column-level SELECT keeps the user from ever
# reading 2FA secrets or session tokens, even with stolen credentials; column-level UPDATE keeps
# it from rewriting them. `probe()` selects exactly the SELECT columns.
REQUIRED_PRIVILEGES: dict[str, dict[str, tuple[str, ...] | None]] = {
    "identities": {"SELECT": ("id", "address")},
    "identity_emails": {"SELECT": ("identity_address", "email", "primary", "deleted_at")},
    "identity_2fa": {
        "SELECT": ("uuid", "identity_address", "state", "deleted_at"),
        "UPDATE": ("state", "deactivation_code", "deleted_at", "updated_at"),
    },
    "identity_2fa_codes": {
        "SELECT": ("identity_2fa_uuid", "state"),
        "UPDATE": ("state", "updated_at"),
    },
    "identity_proxies": {
        "SELECT": ("identity_address", "state", "deleted_at"),
        "UPDATE": ("state", "deleted_at", "updated_at"),
    },
    "event_logs": {
        "SELECT": ("id", "loggable_type", "loggable_id", "event", "data"),
        "INSERT": None,
    },
}


# MySQL/MariaDB error numbers that mean "try again later".
_RETRY_ERRNOS: dict[int, str] = {
    1205: "lock_timeout",  # ER_LOCK_WAIT_TIMEOUT
    1213: "deadlock",  # ER_LOCK_DEADLOCK
    1040: "connection_error",  # too many connections
    1053: "connection_error",  # server shutdown in progress
    1317: "connection_error",  # query interrupted
    1927: "connection_error",  # MariaDB: connection killed
    2002: "connection_error",  # can't connect through socket
    2003: "connection_error",  # can't connect to server
    2005: "connection_error",  # unknown host
    2006: "connection_error",  # server has gone away
    2013: "connection_error",  # lost connection during query
    2055: "connection_error",  # lost connection (system error)
    4031: "connection_error",  # MariaDB/MySQL: disconnected for inactivity
}
_UNAUTHORIZED_ERRNOS = frozenset({1044, 1045, 1142, 1143, 1227, 1698})


class ForusDbError(RuntimeError):
    """`probe()` found the Forus database unreachable, unreadable or not as expected."""


def marker(job: ExecutionJob) -> str:
    """The `deactivation_code` written on reset (varchar(20)): `mailbot:` + the request id.

    Our request ids ("R-" + 8 base32 characters) fit and are what support staff see in the
    confirmation. A longer id would be cut, and a cut id may collide, so then the 12 characters
    are a hash of the idempotency key instead. (The key itself is useless here: by default it
    is "reset-mailbot:<request id>", so its first characters are the same for every request.)
    """
    room = MARKER_LENGTH - len(MARKER_PREFIX)
    if (
        0 < len(job.request_id) <= room
        and job.request_id.isascii()
        and job.request_id.isprintable()
    ):
        return MARKER_PREFIX + job.request_id
    return MARKER_PREFIX + hashlib.sha256(job.idempotency_key.encode()).hexdigest()[:room]


def grant_statements(database: str, grantee: str) -> list[str]:
    """The GRANT statements for the executor's user, e.g. grantee "'mailbot'@'10.0.0.5'"."""
    statements = []
    for table, privileges in REQUIRED_PRIVILEGES.items():
        parts = [
            privilege
            if columns is None
            else f"{privilege} ({', '.join(f'`{c}`' for c in columns)})"
            for privilege, columns in privileges.items()
        ]
        statements.append(f"GRANT {', '.join(parts)} ON `{database}`.`{table}` TO {grantee}")
    return statements


def _select_list(table: str) -> str:
    columns = REQUIRED_PRIVILEGES[table]["SELECT"] or ()
    return ", ".join(f"`{c}`" for c in columns)


class ForusDbExecutor:
    """Resets 2FA in Forus's database in one transaction; see the module docstring."""

    name = "forus-db"

    def __init__(
        self,
        url: str,
        revoke_sessions: bool = True,
        lock_timeout_seconds: int = 10,
        *,
        timezone: str = "Europe/Amsterdam",
        connect_timeout_seconds: int = 10,
    ) -> None:
        parsed = sa.engine.make_url(url)
        if parsed.drivername not in {"mysql+pymysql", "mariadb+pymysql"}:
            raise ValueError(
                f"forus-db url must be mysql+pymysql://user:password@host/database, "
                f"not {parsed.drivername}://"
            )
        if not parsed.database:
            raise ValueError("forus-db url names no database")
        if lock_timeout_seconds < 1:
            raise ValueError("lock_timeout_seconds must be at least 1")
        self.url = parsed.render_as_string(hide_password=True)
        self.revoke_sessions = revoke_sessions
        self.lock_timeout_seconds = int(lock_timeout_seconds)
        self._tz = ZoneInfo(timezone)
        # Bounded waits everywhere: a hung server must turn into RETRY, not a stuck daemon.
        defaults: dict[str, Any] = {
            "charset": "utf8mb4",
            "connect_timeout": connect_timeout_seconds,
            "read_timeout": self.lock_timeout_seconds + 30,
            "write_timeout": 30,
        }
        connect_args = {k: v for k, v in defaults.items() if k not in parsed.query}
        if "ssl_disabled" in parsed.query:  # SQLAlchemy passes it on as a string: "false" is true
            connect_args["ssl_disabled"] = _truthy(parsed.query["ssl_disabled"])
        self._engine = sa.create_engine(
            parsed,
            isolation_level="READ COMMITTED",
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_size=2,
            max_overflow=2,
            connect_args=connect_args,
        )

    def __repr__(self) -> str:  # never show the password
        return f"ForusDbExecutor(url={self.url!r}, revoke_sessions={self.revoke_sessions})"

    def close(self) -> None:
        """Close pooled connections (the daemon calls this on shutdown; tests after each use)."""
        self._engine.dispose()

    def __enter__(self) -> ForusDbExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- execute ---------------------------------------------------------------------------

    def execute(self, job: ExecutionJob) -> ExecutionResult:
        """One transaction; the result is returned only after COMMIT succeeded."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    sa.text(f"SET SESSION innodb_lock_wait_timeout = {self.lock_timeout_seconds}")
                )
                result = self._reset(conn, job)
            return result
        except sa_exc.DBAPIError as exc:
            return _classify_dbapi_error(exc)
        except sa_exc.TimeoutError as exc:  # connection pool exhausted
            return ExecutionResult(
                status=ExecutionStatus.RETRY, code="connection_error", detail=str(exc)[:200]
            )
        except sa_exc.SQLAlchemyError as exc:
            return ExecutionResult(
                status=ExecutionStatus.FAILED,
                code="database_error",
                # first line only: the SQL and its parameters (e-mail addresses) follow it
                detail=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
            )

    def _reset(self, conn: sa.Connection, job: ExecutionJob) -> ExecutionResult:
        found = _find_identity(conn, job.account_email)
        if isinstance(found, ExecutionResult):
            return found
        address, identity_id = found

        live = [f.uuid for f in _live_factors(conn, address, lock=True)]
        previous = _previous_reset(conn, identity_id, job)
        if previous is not None:
            detail = f"event_logs #{previous.id} records this request's reset of {address}"
            if live:
                detail += f"; {len(live)} factor(s) enrolled since were left alone"
            return ExecutionResult(
                status=ExecutionStatus.SUCCEEDED, code="already_reset", detail=detail
            )
        if not live:
            return _failed(
                "two_factor_not_enabled", f"identity {address} has no pending or active factor"
            )

        now = datetime.now(self._tz).replace(tzinfo=None, microsecond=0)
        uuids = sa.bindparam("uuids", expanding=True)
        factors_done = conn.execute(
            sa.text(
                "UPDATE identity_2fa SET state = 'deactivated', deactivation_code = :marker,"
                " deleted_at = :now, updated_at = :now"
                " WHERE uuid IN :uuids AND deleted_at IS NULL"
            ).bindparams(uuids),
            {"marker": marker(job), "now": now, "uuids": live},
        ).rowcount
        codes_done = conn.execute(
            sa.text(
                "UPDATE identity_2fa_codes SET state = 'deactivated', updated_at = :now"
                " WHERE identity_2fa_uuid IN :uuids AND state = 'active'"
            ).bindparams(uuids),
            {"now": now, "uuids": live},
        ).rowcount
        sessions_done = 0
        if self.revoke_sessions:
            sessions_done = conn.execute(
                sa.text(
                    "UPDATE identity_proxies SET state = 'terminated', deleted_at = :now,"
                    " updated_at = :now"
                    " WHERE identity_address = :a AND state = 'active' AND deleted_at IS NULL"
                ),
                {"a": address, "now": now},
            ).rowcount
        data = {
            "source": "reset-mailbot",
            "request_id": job.request_id,
            "idempotency_key": job.idempotency_key,
            "marker": marker(job),
            "municipality": job.municipality,
            "requested_by": job.requested_by,
            "requested_by_name": job.requested_by_name,
            "approved_by": job.approved_by,
            "case_reference": job.case_reference,
            "message_id": job.message_id,
            "factors_deactivated": factors_done,
            "codes_deactivated": codes_done,
            "sessions_revoked": sessions_done,
            "revoke_sessions": self.revoke_sessions,
        }
        event_id = conn.execute(
            sa.text(
                "INSERT INTO event_logs (loggable_type, loggable_id, event, identity_address,"
                " data, original, created_at, updated_at)"
                " VALUES ('identity', :id, :event, :a, :data, 1, :now, :now)"
            ),
            {
                "id": identity_id,
                "event": EVENT,
                "a": address,
                "data": json.dumps(data, ensure_ascii=False),
                "now": now,
            },
        ).lastrowid
        return ExecutionResult(
            status=ExecutionStatus.SUCCEEDED,
            code="reset",
            detail=(
                f"identity {address}: deactivated {factors_done} factor(s) and {codes_done} "
                f"code(s), revoked {sessions_done} session(s); event_logs #{event_id}"
            ),
        )

    # -- dry run ---------------------------------------------------------------------------

    def dry_run(self, job: ExecutionJob) -> ExecutionResult:
        """What `execute` would do, from plain SELECTs (no locks) in a transaction rolled back.

        The same lookups in the same order, so the code is the one `execute` would return now;
        `detail` names the identity and the rows that would change. Needs no right beyond the
        executor's SELECT columns.
        """
        try:
            with self._engine.connect() as conn:
                try:
                    return self._plan(conn, job)
                finally:
                    conn.rollback()
        except sa_exc.DBAPIError as exc:
            return _classify_dbapi_error(exc)
        except sa_exc.SQLAlchemyError as exc:
            return ExecutionResult(
                status=ExecutionStatus.FAILED, code="database_error",
                detail=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
            )

    def _plan(self, conn: sa.Connection, job: ExecutionJob) -> ExecutionResult:
        found = _find_identity(conn, job.account_email)
        if isinstance(found, ExecutionResult):
            return found
        address, identity_id = found
        live = _live_factors(conn, address, lock=False)
        previous = _previous_reset(conn, identity_id, job)
        if previous is not None:
            return ExecutionResult(
                status=ExecutionStatus.SUCCEEDED, code="already_reset",
                detail=f"identity {address}: event_logs #{previous.id} records this request's "
                "reset; nothing would change",
            )
        if not live:
            return _failed(
                "two_factor_not_enabled", f"identity {address} has no pending or active factor"
            )
        codes = conn.execute(
            sa.text(
                "SELECT COUNT(identity_2fa_uuid) FROM identity_2fa_codes"
                " WHERE identity_2fa_uuid IN :uuids AND state = 'active'"
            ).bindparams(sa.bindparam("uuids", expanding=True)),
            {"uuids": [f.uuid for f in live]},
        ).scalar_one()
        sessions = 0
        if self.revoke_sessions:
            sessions = conn.execute(
                sa.text(
                    "SELECT COUNT(identity_address) FROM identity_proxies"
                    " WHERE identity_address = :a AND state = 'active' AND deleted_at IS NULL"
                ),
                {"a": address},
            ).scalar_one()
        listed = ", ".join(f"{f.uuid} ({f.state})" for f in live)
        return ExecutionResult(
            status=ExecutionStatus.SUCCEEDED,
            code="reset",
            detail=(
                f"identity {address} (#{identity_id}): would deactivate {len(live)} "
                f"factor(s) [{listed}] with deactivation_code {marker(job)!r}, {codes} active "
                f"code(s), revoke {sessions} active session(s)"
                + ("" if self.revoke_sessions else " (revoke_sessions = false)")
                + f", and insert one event_logs row '{EVENT}'"
            ),
        )

    # -- probe -----------------------------------------------------------------------------

    def probe(self) -> str:
        """Read-only checks of tables, columns and rights (EXPLAIN writes nothing), collation."""
        try:
            with self._engine.connect() as conn:
                for table in REQUIRED_PRIVILEGES:
                    _probe_step(
                        conn,
                        f"{table} is not readable",
                        f"SELECT {_select_list(table)} FROM {table} LIMIT 0",
                    )
                _probe_step(
                    conn,
                    "no locking read on identity_2fa (MySQL 8 needs UPDATE for it)",
                    "SELECT uuid FROM identity_2fa WHERE 1 = 0 FOR UPDATE",
                )
                # EXPLAIN needs the privileges of the statement it explains but changes nothing.
                for table, privileges in REQUIRED_PRIVILEGES.items():
                    if columns := privileges.get("UPDATE"):
                        assignments = ", ".join(f"`{c}` = NULL" for c in columns)
                        _probe_step(
                            conn,
                            f"no UPDATE right on {table}",
                            f"EXPLAIN UPDATE {table} SET {assignments} WHERE 1 = 0",
                        )
                _probe_step(
                    conn,
                    "no INSERT right on event_logs",
                    "EXPLAIN INSERT INTO event_logs (loggable_type, loggable_id, event,"
                    " identity_address, data, original, created_at, updated_at)"
                    " SELECT 'identity', 0, 'probe', NULL, NULL, 1, NULL, NULL FROM DUAL"
                    " WHERE 1 = 0",
                )
                collation = conn.execute(
                    sa.text(
                        "SELECT COLLATION_NAME FROM information_schema.COLUMNS"
                        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'identity_emails'"
                        " AND COLUMN_NAME = 'email'"
                    )
                ).scalar()
                conn.rollback()
        except sa_exc.DBAPIError as exc:
            raise ForusDbError(f"{self.url}: {_error_text(exc)}") from None
        except sa_exc.SQLAlchemyError as exc:
            raise ForusDbError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if collation and not str(collation).endswith("_ci"):
            raise ForusDbError(
                f"{self.url}: identity_emails.email has collation {collation}; the executor "
                "relies on a case-insensitive (_ci) collation to find addresses"
            )
        return (
            f"{self.url}: Forus tables readable, locking read, UPDATE and INSERT rights "
            f"present, identity_emails.email collation {collation or 'unknown'}"
        )


def _probe_step(conn: sa.Connection, what: str, sql: str) -> None:
    try:
        conn.execute(sa.text(sql)).all()
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated or _errno(exc) in _RETRY_ERRNOS:
            raise
        raise ForusDbError(f"{what}: {_error_text(exc)}") from None


def _truthy(value: str | tuple[str, ...]) -> bool:
    text = value[-1] if isinstance(value, tuple) else value
    return text.strip().lower() in {"1", "true", "yes", "on"}




def _live_factors(conn: sa.Connection, address: str, *, lock: bool) -> list[sa.Row[Any]]:
    """The identity's pending or active factors; with `lock`, its factor rows are locked
    (`FOR UPDATE`) for the reset's transaction. Never the secret columns."""
    factors = conn.execute(
        sa.text(
            "SELECT uuid, state FROM identity_2fa"
            " WHERE identity_address = :a AND deleted_at IS NULL ORDER BY uuid"
            + (" FOR UPDATE" if lock else "")
        ),
        {"a": address},
    ).all()
    return [f for f in factors if f.state in ("pending", "active")]


def _previous_reset(conn: sa.Connection, identity_id: int, job: ExecutionJob) -> Any:
    """The `event_logs` row of this request's earlier reset of the identity, if any."""
    return conn.execute(
        sa.text(
            "SELECT id FROM event_logs WHERE loggable_type = 'identity'"
            " AND loggable_id = :id AND event = :event"
            " AND JSON_UNQUOTE(JSON_EXTRACT(data, '$.request_id')) = :rid"
            " ORDER BY id LIMIT 1"
        ),
        {"id": identity_id, "event": EVENT, "rid": job.request_id},
    ).first()

def _find_identity(conn: sa.Connection, account_email: str) -> tuple[str, int] | ExecutionResult:
    """The one identity whose primary, non-deleted e-mail is `account_email`, or why not.

    Shared by the reset and its dry run, so both read the account exactly alike. The collation
    is case- and accent-insensitive, so matches are re-checked with a plain lower-case compare.
    """
    email = account_email.strip()
    candidates = conn.execute(
        sa.text(
            "SELECT identity_address, email FROM identity_emails"
            " WHERE email = :email AND `primary` = 1 AND deleted_at IS NULL"
        ),
        {"email": email},
    ).all()
    wanted = email.lower()
    addresses = sorted({r.identity_address for r in candidates if r.email.lower() == wanted})
    if not addresses:
        return _failed(
            "account_not_found",
            "no identity has this address as its primary, non-deleted e-mail",
        )
    if len(addresses) > 1:
        return _failed(
            "ambiguous_account",
            f"{len(addresses)} identities have this address as their primary e-mail; "
            "a person must decide (nothing was changed)",
        )
    address = addresses[0]
    identity = conn.execute(
        sa.text("SELECT id FROM identities WHERE address = :a"), {"a": address}
    ).first()
    if identity is None:
        return _failed(
            "account_not_found", f"e-mail points to identity {address}, which does not exist"
        )
    return address, int(identity.id)

def _failed(code: str, detail: str) -> ExecutionResult:
    return ExecutionResult(status=ExecutionStatus.FAILED, code=code, detail=detail)


def _errno(exc: sa_exc.DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _error_text(exc: sa_exc.DBAPIError) -> str:
    """The server's error number and message only: str(exc) would include the SQL parameters."""
    args = getattr(exc.orig, "args", ())
    errno = _errno(exc)
    message = str(args[1]) if len(args) > 1 else type(exc.orig).__name__
    return (f"MySQL error {errno}: " if errno is not None else "") + message[:200]


def _classify_dbapi_error(exc: sa_exc.DBAPIError) -> ExecutionResult:
    errno = _errno(exc)
    detail = _error_text(exc)
    if errno in _RETRY_ERRNOS:
        return ExecutionResult(
            status=ExecutionStatus.RETRY, code=_RETRY_ERRNOS[errno], detail=detail
        )
    if errno in _UNAUTHORIZED_ERRNOS:
        return ExecutionResult(status=ExecutionStatus.RETRY, code="unauthorized", detail=detail)
    if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
        return ExecutionResult(status=ExecutionStatus.RETRY, code="connection_error", detail=detail)
    return ExecutionResult(status=ExecutionStatus.FAILED, code="database_error", detail=detail)
