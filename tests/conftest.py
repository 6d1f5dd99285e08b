"""Shared fixtures. Each service harness lives in its own plugin module under tests/harness/."""

pytest_plugins = [
    "tests.harness.dns_fixtures",
    "tests.harness.mail_fixtures",
    "tests.harness.db_fixtures",
    "tests.harness.mariadb_fixtures",
]
