"""Pytest fixtures for the state database: a private PostgreSQL cluster and SQLite.

- `postgres_url` (session): a throwaway cluster from the Debian `postgresql` package
  (initdb + pg_ctl run as user `postgres` when we are root), on 127.0.0.1 and a free port,
  trust auth; yields ``postgresql+psycopg://postgres@127.0.0.1:<port>/postgres``.
- `database_url` (function, parametrised ``sqlite`` / ``postgresql``): a fresh, empty
  database per test, so storage code is tested on both backends it supports.
- `store` (function): a `Store` on `database_url`, migrated, whose clock stands still at the
  test module's `T0`.

PostgreSQL is only started when a test asks for it. Durability is switched off
(fsync=off): the cluster lives for one test session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reset_mailbot.adapters.db import migrate
from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot_testing.postgres import PostgresCluster, PostgresError


def _state_root() -> Path:
    """/tmp/reset-mailbot-tests-<pid> (0755), shared with the mail harness."""
    root = Path(f"/tmp/reset-mailbot-tests-{os.getpid()}")
    root.mkdir(mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)
    return root


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The running private cluster (see `postgres_url` for the URL only)."""
    cluster = PostgresCluster(_state_root() / "postgres")
    try:
        cluster.start()
    except PostgresError as exc:
        cluster.stop()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            cluster.root.parent.rmdir()  # the shared state root, once every harness is done


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL (postgresql+psycopg) of the private cluster's `postgres` database."""
    return postgres_cluster.url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = cluster.create_database()
    try:
        yield cluster.database_url(name)
    finally:
        cluster.drop_database(name)


@pytest.fixture
def store(database_url: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated `Store` on `database_url`; its clock is the test module's `T0`."""
    now = request.module.T0
    migrate.upgrade(database_url)
    engine = create_db_engine(database_url)
    yield Store(engine, clock=lambda: now)
    engine.dispose()
