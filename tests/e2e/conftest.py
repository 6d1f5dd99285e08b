"""Fixtures for the end-to-end daemon tests (the environment itself is in daemon_env.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reset_mailbot_testing.forus_http import FakeForus
from reset_mailbot_testing.smtp_sink import SmtpSink
from tests.e2e.daemon_env import DaemonEnv
from tests.harness.mail_fixtures import Mailbox


@pytest.fixture
def env(
    tmp_path: Path, mailbox: Mailbox, smtp_sink: SmtpSink, clean_dns: Any,
    database_url: str,
) -> Iterator[DaemonEnv]:
    with FakeForus(accounts={"piet.jansen@hotmail.com": True}) as forus:
        environment = DaemonEnv(tmp_path, mailbox, smtp_sink, clean_dns, forus, database_url)
        environment.cli("db", "upgrade")
        yield environment
