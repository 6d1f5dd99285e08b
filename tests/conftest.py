"""Shared fixtures. Each service harness lives in its own plugin module under tests/harness/."""

from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = [
    "tests.harness.dns_fixtures",
    "tests.harness.mail_fixtures",
    "tests.harness.db_fixtures",
    "tests.harness.mariadb_fixtures",
    "tests.harness.oauth_fixtures",
    "tests.harness.browser_fixtures",
]


@pytest.fixture(autouse=True)
def _restore_logging_configuration() -> Iterator[None]:
    """In-process CLI runs configure structlog to write to their captured stderr, which is closed
    when the run ends; put back the configuration a test started with so later tests that log
    do not write to a closed file (the order of tests must not matter)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
