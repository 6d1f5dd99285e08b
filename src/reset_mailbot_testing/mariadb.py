"""A private MariaDB server for the forus-db executor tests (Debian package `mariadb-server`).

One server per pytest session: `mariadb-install-db` into <root>/data (owned by `mysql` when we
run as root), then `mariadbd --no-defaults` on a free loopback port and a private socket. Grants
stay ON, because the tests run the executor as a least-privilege user. Durability is switched off
(no binlog, no doublewrite, lazy log flushes): the data is thrown away at the end and start-up
time counts in CI.

<root> is /dev/shm/reset-mailbot-mariadb-<pid> when /dev/shm is a tmpfs with room to spare,
else /tmp/reset-mailbot-mariadb-<pid> ($RESET_MAILBOT_MARIADB_DIR overrides). On a busy disk
every CREATE TABLE costs tens of milliseconds of fsync (measured: install 4-6 s and ~300 ms per
test database on /tmp under load, against ~1.7 s and ~10 ms on tmpfs).

Each test gets a fresh database loaded from forus_schema.sql and its own user holding exactly
the documented GRANTs (`ForusDatabase`), with small seeding and inspection helpers.

Why one module of ~500 lines: server lifecycle, per-test databases and their seeding helpers
are used together by every forus-db test; it is test infrastructure, not product code.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pymysql
import sqlalchemy as sa

from reset_mailbot.adapters.executors.forus_db import grant_statements

HOST = "127.0.0.1"
SCHEMA_FILE = Path(__file__).with_name("forus_schema.sql")
TABLES = (
    "identities",
    "identity_emails",
    "identity_2fa",
    "identity_2fa_codes",
    "identity_proxies",
    "event_logs",
)
_SERVER_NAMES = ("mariadbd", "mysqld")
_INSTALL_NAMES = ("mariadb-install-db", "mysql_install_db")
_SBIN = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


class MariaDbError(RuntimeError):
    """MariaDB is missing, or did not start or stop."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _which(names: Iterable[str]) -> str | None:
    for name in names:
        found = shutil.which(name) or next(
            (f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None
        )
        if found:
            return found
    return None


def _process_running(pid: int) -> bool:
    """True while `pid` is alive; a zombie counts as stopped (PID 1 here reaps slowly)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def schema_statements(path: Path = SCHEMA_FILE) -> list[str]:
    """The schema file as statements: `--` comment lines dropped, split on a trailing `;`."""
    statements: list[str] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements


def default_root() -> Path:
    """Where the server lives: tmpfs when it has room (fsync-free DDL), else /tmp."""
    name = f"reset-mailbot-mariadb-{os.getpid()}"
    if override := os.environ.get("RESET_MAILBOT_MARIADB_DIR"):
        return Path(override) / name
    shm = Path("/dev/shm")
    try:
        stat = os.statvfs(shm)
        if os.access(shm, os.W_OK) and stat.f_bavail * stat.f_frsize >= 512 * 2**20:
            return shm / name
    except OSError:
        pass
    return Path("/tmp") / name


def remove_stale_roots(parent: Path) -> list[Path]:
    """Remove the roots of earlier runs whose pytest process is gone (a tmpfs keeps them).

    A server that survived its pytest (SIGKILL) is stopped first, found by the pid file in
    its own root and only if that process runs with that very data dir.
    """
    removed = []
    for root in parent.glob("reset-mailbot-mariadb-*"):
        owner = root.name.rsplit("-", 1)[-1]
        if not owner.isdigit() or _process_running(int(owner)):
            continue
        try:
            server_pid = int((root / "mysqld.pid").read_text().strip())
            cmdline = Path(f"/proc/{server_pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            server_pid, cmdline = 0, b""
        if server_pid and f"--datadir={root / 'data'}".encode() in cmdline:
            os.kill(server_pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _process_running(server_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


class MariaDbServer:
    """A throwaway mariadbd with its own data dir, socket and free port; root has no password."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()
        self.datadir = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.log = self.root / "error.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self._counter = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the data dir and start the server; raise MariaDbError with the log tail."""
        server = _which(_SERVER_NAMES)
        install = _which(_INSTALL_NAMES)
        if server is None or install is None:
            raise MariaDbError(
                "MariaDB is not installed (need mariadbd and mariadb-install-db): "
                "run scripts/install-test-deps.sh as root (Debian package mariadb-server)"
            )
        begin = time.monotonic()
        remove_stale_roots(self.root.parent)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.datadir.mkdir(parents=True)
        self.root.chmod(0o755)
        user_args: list[str] = []
        if os.geteuid() == 0:
            try:
                mysql = pwd.getpwnam("mysql")
            except KeyError as exc:
                raise MariaDbError("running as root but there is no 'mysql' user") from exc
            for path in (self.root, self.datadir):
                os.chown(path, mysql.pw_uid, mysql.pw_gid)
            user_args = ["--user=mysql"]
        init = subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={self.datadir}",
                *user_args,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=16M",  # the server's size: no resize at start
            ],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if init.returncode != 0:
            out = (init.stdout + init.stderr).decode(errors="replace")[-2000:]
            raise MariaDbError(f"mariadb-install-db failed (exit {init.returncode}):\n{out}")
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            self.port = free_port()
            self.process = subprocess.Popen(
                self._server_args(server, user_args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready(deadline):
                break
            # Another process took the free port between our check and mariadbd's bind: retry.
            if attempt == 2 or "Bind on TCP/IP port" not in self.log_tail():
                raise MariaDbError(
                    f"mariadbd exited with {self.process.returncode}:\n{self.log_tail()}"
                )
        self.startup_seconds = time.monotonic() - begin

    def _server_args(self, server: str, user_args: list[str]) -> list[str]:
        return [
            server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            *user_args,
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--bind-address={HOST}",
            f"--pid-file={self.root / 'mysqld.pid'}",
            f"--log-error={self.log}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--performance-schema=OFF",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-fast-shutdown=2",
            "--max-connections=200",
        ]

    def _wait_ready(self, deadline: float) -> bool:
        """True once root can log in; False if mariadbd exited; MariaDbError on timeout."""
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                return False
            try:
                self._wait_socket()
                self.admin().close()
                return True
            except (OSError, pymysql.err.OperationalError):
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise MariaDbError(f"mariadbd not ready in time:\n{tail}") from None
                time.sleep(0.02)

    def _wait_socket(self) -> None:
        """Raise OSError unless the socket accepts (PyMySQL leaks the socket of a failed try)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            probe.connect(str(self.socket))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (fast shutdown), SIGKILL after `timeout`; then remove the data dir."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.process is not None and _process_running(self.process.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no error log)"

    # -- access ----------------------------------------------------------------------------

    def admin(self, database: str | None = None) -> pymysql.connections.Connection[Any]:
        """A root connection over the private socket (autocommit)."""
        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=2,
            ssl_disabled=True,  # PyMySQL >= 2.2 tries TLS by default: ~90 ms per connect
        )

    def url(self, user: str, password: str | None, database: str) -> str:
        """A SQLAlchemy URL for `user` over TCP (what the executor is configured with).

        `ssl_disabled=true`: the private server has no TLS, and PyMySQL >= 2.2 would otherwise
        build a CA-loaded TLS context on every connect (~90 ms) to try it.
        """
        auth = user if not password else f"{user}:{password}"
        return (
            f"mysql+pymysql://{auth}@{HOST}:{self.port}/{database}"
            "?charset=utf8mb4&ssl_disabled=true"
        )

    def root_url(self, database: str) -> str:
        return self.url("root", None, database)

    def create_forus_database(self) -> ForusDatabase:
        """A new database from forus_schema.sql and a user with exactly the documented GRANTs."""
        n = next(self._counter)
        database = f"forus_{os.getpid()}_{n}"
        user = f"mailbot_{n}"
        password = secrets.token_urlsafe(16)
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            cur.execute(f"USE `{database}`")
            for statement in schema_statements():
                cur.execute(statement)
            cur.execute(f"CREATE USER '{user}'@'{HOST}' IDENTIFIED BY %s", (password,))
            for statement in grant_statements(database, f"'{user}'@'{HOST}'"):
                cur.execute(statement)
        return ForusDatabase(self, database, user, password)

    def drop_forus_database(self, db: ForusDatabase) -> None:
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{db.user}'@'{HOST}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{db.database}`")


@dataclass(frozen=True)
class Identity:
    id: int
    address: str


class ForusDatabase:
    """One test's Forus database: executor URL (least privilege), root URL and seed helpers."""

    def __init__(self, server: MariaDbServer, database: str, user: str, password: str) -> None:
        self.server = server
        self.database = database
        self.user = user
        self.password = password
        self.url = server.url(user, password, database)
        self.root_url = server.root_url(database)
        self._engine: sa.Engine | None = None

    def __repr__(self) -> str:
        return f"ForusDatabase({self.database!r}, user={self.user!r}, port={self.server.port})"

    @property
    def engine(self) -> sa.Engine:
        """A root engine for seeding and inspection (disposed by `close`)."""
        if self._engine is None:
            self._engine = sa.create_engine(self.root_url, poolclass=sa.pool.NullPool)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> list[sa.Row[Any]]:
        """Execute one statement as root in its own transaction; rows if it returns any."""
        with self.engine.begin() as conn:
            result = conn.execute(sa.text(sql), dict(params or {}))
            return list(result) if result.returns_rows else []

    # -- seeding ---------------------------------------------------------------------------

    def add_identity(
        self, email: str | None = None, *, primary: bool = True, deleted: bool = False
    ) -> Identity:
        """An identity (address `0x` + 40 hex chars), optionally with one e-mail address."""
        address = "0x" + secrets.token_hex(20)
        now = datetime(2026, 1, 5, 9, 0, 0)
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.text(
                    "INSERT INTO identities (address, created_at, updated_at) "
                    "VALUES (:a, :now, :now)"
                ),
                {"a": address, "now": now},
            )
            identity = Identity(int(result.lastrowid), address)
        if email is not None:
            self.add_email(identity, email, primary=primary, deleted=deleted)
        return identity

    def add_email(
        self, identity: Identity, email: str, *, primary: bool = True, deleted: bool = False
    ) -> None:
        now = datetime(2026, 1, 5, 9, 0, 0)
        self.run(
            "INSERT INTO identity_emails (identity_address, email, verified, `primary`, initial,"
            " created_at, updated_at, deleted_at) VALUES (:a, :e, 1, :p, :p, :now, :now, :d)",
            {
                "a": identity.address,
                "e": email,
                "p": int(primary),
                "now": now,
                "d": now if deleted else None,
            },
        )

    def add_2fa(
        self,
        identity: Identity,
        *,
        state: str = "active",
        phone: str | None = None,
        deleted: bool = False,
    ) -> str:
        """A factor: phone when `phone` is given, else an authenticator with a secret."""
        factor = str(uuid.uuid4())
        now = datetime(2026, 1, 5, 9, 0, 0)
        self.run(
            "INSERT INTO identity_2fa (uuid, identity_address, state, auth_2fa_provider_id,"
            " phone, secret, secret_url, code, deactivation_code, created_at, updated_at,"
            " deleted_at) VALUES (:u, :a, :s, :prov, :phone, :secret, :url, :code, :dcode,"
            " :now, :now, :d)",
            {
                "u": factor,
                "a": identity.address,
                "s": state,
                "prov": None if phone else 1,
                "phone": phone,
                "secret": None if phone else "JBSWY3DPEHPK3PXP" + secrets.token_hex(4).upper(),
                "url": None if phone else "otpauth://totp/Forus:test?secret=JBSWY3DPEHPK3PXP",
                "code": secrets.token_hex(4),
                "dcode": secrets.token_hex(4),
                "now": now,
                "d": now if deleted else None,
            },
        )
        return factor

    def add_code(self, factor: str, *, state: str = "active") -> int:
        now = datetime(2026, 1, 5, 9, 0, 0)
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.text(
                    "INSERT INTO identity_2fa_codes (code, identity_2fa_uuid, state, expire_at,"
                    " created_at, updated_at) VALUES (:c, :u, :s, :now, :now, :now)"
                ),
                {"c": f"{secrets.randbelow(10**6):06d}", "u": factor, "s": state, "now": now},
            )
            return int(result.lastrowid)

    def add_proxy(
        self, identity: Identity, factor: str | None = None, *, state: str = "active"
    ) -> int:
        now = datetime(2026, 1, 5, 9, 0, 0)
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.text(
                    "INSERT INTO identity_proxies (type, identity_address, access_token,"
                    " exchange_token, state, identity_2fa_uuid, identity_2fa_code, expires_in,"
                    " activated_at, created_at, updated_at) VALUES ('email_code', :a, :t, :x,"
                    " :s, :u, :c, 3600, :now, :now, :now)"
                ),
                {
                    "a": identity.address,
                    "t": secrets.token_hex(32),
                    "x": secrets.token_hex(16),
                    "s": state,
                    "u": factor,
                    "c": "123456" if factor else None,
                    "now": now,
                },
            )
            return int(result.lastrowid)

    # -- inspection ------------------------------------------------------------------------

    def rows(self, table: str, order_by: str = "1") -> list[dict[str, Any]]:
        """Every row of `table` as dicts (root sees all columns, including secrets)."""
        if table not in TABLES:
            raise ValueError(table)
        return [dict(r._mapping) for r in self.run(f"SELECT * FROM {table} ORDER BY {order_by}")]

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """All rows of all Forus tables: compare two snapshots to prove nothing changed."""
        return {table: self.rows(table) for table in TABLES}

    def counts(self) -> dict[str, int]:
        return {table: int(self.run(f"SELECT COUNT(*) FROM {table}")[0][0]) for table in TABLES}
