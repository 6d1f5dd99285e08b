"""`reset-mailbot check --db` explains a message as the daemon did or would (issue #13): the
daemon's own context rules (domain/context.py) over the daemon's database, opened read-only.

A real DNS server serves the examples' DKIM keys; the daemon's inbox processor records the
sample request in a SQLite file; `check` runs as a subprocess against that file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from reset_mailbot import bootstrap
from reset_mailbot.adapters.db.migrate import upgrade
from reset_mailbot.adapters.db.schema import Message
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.config import load_config
from reset_mailbot.service.inbox import InboxProcessor
from reset_mailbot.service.inbox_policy import InboxPolicy
from tests.examples import EXAMPLES
from tests.harness.dns_fixtures import DnsServer

pytestmark = pytest.mark.services

SUPPORT = "support@forus.test"
SIGNED_DAY = "2026-11-26T12:00:00+01:00"  # the examples were signed that day
SAMPLE = EXAMPLES / "001-utrecht_basic.eml"


def _check(config: Path, *args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "reset_mailbot.cli", "check", "--json", "--at", SIGNED_DAY,
         "--config", str(config), *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture
def setup(clean_dns: DnsServer, tmp_path: Path) -> tuple[Path, Path]:
    clean_dns.load_zone_file(EXAMPLES / "zone.json")
    database = tmp_path / "state.sqlite3"
    config = tmp_path / "reset-mailbot.toml"
    config.write_text(
        f'[mailbox]\naddress = "{SUPPORT}"\n'
        f'[database]\nurl = "sqlite:///{database}"\n'
        f'[dns]\nnameservers = ["{clean_dns.host}"]\nport = {clean_dns.port}\n'
        f"[rules]\nmunicipalities = {json.dumps(str(EXAMPLES / 'municipalities.yaml'))}\n",
        encoding="utf-8",
    )
    upgrade(f"sqlite:///{database}")
    cfg = load_config(config)
    store = Store.from_url(f"sqlite:///{database}")
    policy = InboxPolicy(support_address=SUPPORT, max_message_bytes=10**6, executor_kind="http")
    when = datetime.fromisoformat(SIGNED_DAY).astimezone(UTC)
    processor = InboxProcessor(store, bootstrap.build_decision_context(cfg), policy,
                               clock=lambda: when)
    decided = processor.decide(SAMPLE.read_bytes(), uid=1, now=when)
    processor.commit([decided], mailbox="INBOX", uidvalidity=1)
    store.engine.dispose()
    return config, database


def test_check_db_explains_a_replay_the_daemon_would_ignore(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    config, database = setup
    # the signed message again, with an unsigned header added: other bytes, same signature
    replay = tmp_path / "replay.eml"
    replay.write_bytes(b"X-Added-By: someone\r\n" + SAMPLE.read_bytes())
    alone = _check(config, str(replay))[0]
    assert alone["outcome"] == "complete"  # on its own, the message is a complete request
    in_context = _check(config, "--db", str(database), str(replay))[0]
    assert in_context["outcome"] == "ignored"
    assert in_context["reasons"] == ["duplicate"]
    assert in_context["reply"] is False


def test_check_db_shows_the_recorded_message_as_decided_and_writes_nothing(
    setup: tuple[Path, Path],
) -> None:
    config, database = setup
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    again = _check(config, "--db", str(database), str(SAMPLE))[0]
    assert again["outcome"] == "complete"  # the same bytes: resumed, filed as before
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    store = Store.from_url(f"sqlite:///{database}")
    with store.unit_of_work() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Message)) == 1
    store.engine.dispose()


T0 = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # the `store` fixture's clock


def test_a_read_only_store_refuses_writes_on_both_databases(
    store: Store, database_url: str
) -> None:
    """`check --db` may read what a daemon recorded, never change it (SQLite and PostgreSQL)."""
    with store.unit_of_work() as uow:
        uow.audit_log.append("recorded", now=T0)
    reader = bootstrap.build_read_only_store(database_url)
    with reader.unit_of_work() as uow:  # reading works
        assert uow.session.scalar(select(func.count()).select_from(Message)) == 0
    with pytest.raises(Exception, match=r"readonly|read-only|attempt to write"), \
            reader.unit_of_work() as uow:
        uow.audit_log.append("tampered", now=T0)
    reader.engine.dispose()
