"""Pytest fixtures for the private MariaDB server (src/reset_mailbot_testing/mariadb.py).

- `mariadb_server` (session): one mariadbd for the whole run, stopped at the end. If it cannot
  start, every test using it errors with the reason: a missing service is a broken test
  environment, not a reason to skip.
- `forus_db` (function): a fresh Forus-shaped database and a least-privilege user;
  `forus_db.url` is what the executor gets, `forus_db.root_url`/`forus_db.engine` are for
  seeding and inspection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from reset_mailbot_testing.mariadb import ForusDatabase, MariaDbError, MariaDbServer

_timings: dict[str, float] = {}


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDbServer]:
    server = MariaDbServer()
    try:
        server.start()
    except MariaDbError as exc:
        server.stop()  # the message already carries the log tail
        pytest.fail(f"private MariaDB did not start: {exc}", pytrace=False)
    _timings["start"] = server.startup_seconds
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def forus_db(mariadb_server: MariaDbServer) -> Iterator[ForusDatabase]:
    begin = time.monotonic()
    db = mariadb_server.create_forus_database()
    elapsed = time.monotonic() - begin
    _timings["setup_total"] = _timings.get("setup_total", 0.0) + elapsed
    _timings["setup_count"] = _timings.get("setup_count", 0) + 1
    _timings["setup_max"] = max(_timings.get("setup_max", 0.0), elapsed)
    try:
        yield db
    finally:
        db.close()
        mariadb_server.drop_forus_database(db)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line with the MariaDB timings, so CI shows what the service costs."""
    if "start" not in _timings:
        return
    line = f"MariaDB: started in {_timings['start']:.2f} s"
    if count := int(_timings.get("setup_count", 0)):
        mean = _timings["setup_total"] / count * 1000
        line += (
            f"; {count} forus_db setups, mean {mean:.0f} ms, "
            f"max {_timings['setup_max'] * 1000:.0f} ms"
        )
    terminalreporter.write_line(line)
