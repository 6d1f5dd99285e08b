"""Engine creation for the two supported databases: embedded SQLite and PostgreSQL (psycopg 3).

SQLite is made fit for a daemon through a connect event: WAL (readers never block the writer),
foreign keys on (off by default in SQLite), a busy timeout (a second process waits instead of
failing) and `synchronous=FULL` (a committed decision survives power loss; the IMAP MOVE that
follows a commit must never run ahead of the disk).

Every SQLite transaction starts with `BEGIN IMMEDIATE`. pysqlite's own deferred BEGIN lets two
processes both read and then both try to write; in WAL mode the second one fails at once with
SQLITE_BUSY (snapshot), and the busy timeout cannot help. Taking the write lock up front makes
concurrent units of work queue up instead. Readers outside a transaction are not affected; the
cost is that a read-only unit of work holds the write lock for its (short) duration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 30_000

#: what a command catches when the database itself is the problem (gone, locked, full)
DatabaseError = OperationalError


def normalise_url(url: str) -> str:
    """Let `postgresql://` mean psycopg 3 (SQLAlchemy would otherwise pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(
    url: str, *, echo: bool = False, read_only: bool = False, **kwargs: Any
) -> Engine:
    """An engine for `url` with the per-backend settings described in the module docstring.

    `read_only` (for `check --db`, which explains a message in the light of the daemon's
    database): the database refuses every write (SQLite `query_only`, PostgreSQL read-only
    transactions) and SQLite transactions take no write lock, so a running daemon never waits.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if in_memory:
            # One shared connection, or every checkout would see its own empty database.
            kwargs.setdefault("poolclass", StaticPool)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        elif not read_only:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, **kwargs)
        _configure_sqlite(engine, wal=not in_memory, read_only=read_only)
        return engine
    if read_only:
        kwargs.setdefault("connect_args", {"options": "-c default_transaction_read_only=on"})
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, echo=echo, **kwargs)


def _configure_sqlite(engine: Engine, *, wal: bool, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (the documented pysqlite recipe), so that
        # BEGIN IMMEDIATE and SAVEPOINT behave.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if read_only:  # every write refused; the file's own settings are left as they are
                cursor.execute("PRAGMA query_only = ON")
                return
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # a reader takes no write lock: a running daemon never waits for it
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
