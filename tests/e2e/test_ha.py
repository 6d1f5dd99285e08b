"""Several `reset-mailbot run` processes on one mailbox and one PostgreSQL database (issue #15).

Real Dovecot, PostgreSQL, SMTP sink, DNS and HTTP executor; the daemons are separate processes
killed with SIGKILL, frozen with SIGSTOP and stopped with SIGTERM. What must hold whatever
happens: no account reset twice (one idempotency key per account at the executor), no message
answered under two Message-IDs, nothing lost, every confirmation within
`failover_seconds + claim_timeout_seconds + 30 s` of a kill, and exit 0 on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reset_mailbot_testing.forus_http import FakeForus
from reset_mailbot_testing.postgres import PostgresCluster
from reset_mailbot_testing.smtp_sink import SmtpSink
from tests.e2e.daemon_env import CLI, DaemonEnv
from tests.e2e.test_daemon import INCOMPLETE_BODY
from tests.harness.mail_fixtures import Mailbox

pytestmark = pytest.mark.services

FAILOVER = 3.0
CLAIM_TIMEOUT = 5.0
ACCOUNTS = [f"inwoner{i}@example.org" for i in range(40)]


def complete_body(account: str, n: int) -> str:
    return (
        "Beste Forus support,\r\n\r\n"
        f"E-mailadres account: {account}\r\n"
        "De identiteit van de inwoner is vandaag aan de balie gecontroleerd met een paspoort.\r\n"
        "Hierbij geeft de gemeente Utrecht opdracht om de 2FA te resetten.\r\n"
        f"Dossiernummer: {88000 + n}\r\n\r\n"
        "Met vriendelijke groet,\r\nJan de Vries\r\n"
    )


@pytest.fixture
def pg_env(tmp_path: Path, mailbox: Mailbox, smtp_sink: SmtpSink, clean_dns: Any,
           postgres_cluster: PostgresCluster) -> Iterator[DaemonEnv]:
    name = postgres_cluster.create_database()
    try:
        with FakeForus(accounts=dict.fromkeys(ACCOUNTS, True)) as forus:
            env = DaemonEnv(tmp_path, mailbox, smtp_sink, clean_dns, forus,
                            postgres_cluster.database_url(name), poll_interval_seconds=2)
            env.cli("db", "upgrade")
            yield env
    finally:
        postgres_cluster.drop_database(name)


class Instance:
    """One `reset-mailbot run` process with its own instance id and log."""

    def __init__(self, env: DaemonEnv, name: str) -> None:
        self.name = name
        self.log = env.tmp / f"daemon-{name}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
        environ.update({
            "RESET_MAILBOT_HA__INSTANCE_ID": name,
            "RESET_MAILBOT_HA__FAILOVER_SECONDS": str(FAILOVER),
            "RESET_MAILBOT_HA__CLAIM_TIMEOUT_SECONDS": str(CLAIM_TIMEOUT),
            "RESET_MAILBOT_METRICS__LISTEN": "",  # several on one host: no port to share
            # one sender and one municipality send everything here: no brakes
            "RESET_MAILBOT_EXECUTOR__MAX_RESETS_PER_MUNICIPALITY_PER_DAY": "1000",
            "RESET_MAILBOT_REPLIES__MAX_PER_SENDER_PER_HOUR": "1000",
        })
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([*CLI, "run", "--config", str(env.config_path)],
                                         stdout=out, stderr=out, env=environ)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not stop on SIGTERM:\n"
                                 + self.log.read_text()[-3000:]) from None


def wait_for(what: str, condition: Callable[[], Any], timeout: float) -> float:
    """Poll `condition` until truthy; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def leader(env: DaemonEnv) -> str | None:
    rows = env.sql("select holder from leases where name = 'poller' and expires_at > now()")
    return rows[0][0] if rows else None


def deliver_requests(env: DaemonEnv, complete: int, incomplete: int, start: int = 0) -> None:
    for n in range(start, start + complete):
        env.deliver(env.request(complete_body(ACCOUNTS[n], n), subject=f"Verzoek {n}"))
    for n in range(incomplete):
        env.deliver(env.request(INCOMPLETE_BODY, subject=f"Vraag {start + n}"))


def replies_by_source(env: DaemonEnv) -> dict[str, set[str]]:
    """Source Message-ID -> the distinct Message-IDs of the replies to it."""
    found: dict[str, set[str]] = defaultdict(set)
    for reply in env.replies():
        found[str(reply["In-Reply-To"])].add(str(reply["Message-ID"]))
    return found


def assert_nothing_doubled_or_lost(env: DaemonEnv, complete: int, incomplete: int) -> None:
    states = dict(env.sql("select state, count(*) from requests group by state"))
    assert states == {"executed": complete, "incomplete": incomplete}, states
    assert env.folder("INBOX") == []
    assert len(env.folder("Processed")) == complete + incomplete
    assert all(env.forus.resets[a] == 1 for a in ACCOUNTS[:complete]), env.forus.resets
    keys: dict[str, set[str]] = defaultdict(set)
    for request in env.forus.posts():
        keys[request.body["email"]].add(request.headers["idempotency-key"])
    assert all(len(k) == 1 for k in keys.values()), keys  # replays used the same key
    answered = replies_by_source(env)
    assert len(answered) == complete + incomplete
    assert all(len(ids) == 1 for ids in answered.values()), answered


def done(env: DaemonEnv, complete: int, incomplete: int) -> bool:
    return len(env.replies()) >= complete + incomplete and not env.sql(
        "select 1 from requests where state not in ('executed', 'incomplete')")


def test_one_poller_and_the_leader_killed_mid_backlog(pg_env: DaemonEnv) -> None:
    """Three instances; the leader is killed, and then the next one, while resets are in
    flight (the executor answers each after 0.3 s)."""
    env = pg_env
    instances = {name: Instance(env, name) for name in ("a", "b", "c")}
    try:
        wait_for("a leader", lambda: leader(env) in instances, 30)
        env.forus.delay_next(0.3, times=200)  # executions in flight when a leader dies
        deliver_requests(env, complete=30, incomplete=8)
        killed: list[str] = []
        for resets in (4, 12):
            wait_for(f"{resets} resets", lambda n=resets: sum(env.forus.resets.values()) >= n,
                     FAILOVER + CLAIM_TIMEOUT + 30)
            victim = leader(env)
            assert victim in instances and victim not in killed
            instances[victim].signal(signal.SIGKILL)
            instances[victim].proc.wait()
            killed.append(victim)
            kill_at = time.monotonic()
        took = wait_for("everything confirmed", lambda: done(env, 30, 8),
                        FAILOVER + CLAIM_TIMEOUT + 30)
        assert time.monotonic() - kill_at <= FAILOVER + CLAIM_TIMEOUT + 30
        [survivor] = set(instances) - set(killed)
        assert leader(env) == survivor
        assert_nothing_doubled_or_lost(env, 30, 8)
        runners = {name for (name,) in env.sql(
            "select distinct data->>'instance' from audit_log "
            "where event in ('execution_started', 'execution_reclaimed')")}
        assert runners <= set(instances)
        print(f"failover: all confirmed {took:.1f}s after killing the second leader")
    finally:
        codes = {n: i.stop() for n, i in instances.items() if i.proc.returncode is None}
    assert list(codes.values()) == [0], codes


def test_a_frozen_leader_is_replaced_and_stands_down_when_it_wakes(pg_env: DaemonEnv) -> None:
    env = pg_env
    a, b = Instance(env, "a"), Instance(env, "b")
    try:
        wait_for("a leader", lambda: leader(env) in {"a", "b"}, 30)
        frozen, other = (a, b) if leader(env) == "a" else (b, a)
        frozen.signal(signal.SIGSTOP)
        deliver_requests(env, complete=1, incomplete=1)
        took = wait_for("the standby's confirmation", lambda: done(env, 1, 1),
                        FAILOVER + CLAIM_TIMEOUT + 30)
        assert leader(env) == other.name
        frozen.signal(signal.SIGCONT)
        wait_for("the woken leader to stand down",
                 lambda: '"leadership_lost"' in frozen.log.read_text(), 15)
        deliver_requests(env, complete=1, incomplete=0, start=1)
        wait_for("the next request", lambda: done(env, 2, 1), 30)
        assert leader(env) == other.name
        assert_nothing_doubled_or_lost(env, 2, 1)
        print(f"a frozen leader was replaced in {took:.1f}s")
    finally:
        codes = {i.name: i.stop() for i in (a, b)}
    assert codes == {"a": 0, "b": 0}


def test_a_rolling_restart_loses_nothing(pg_env: DaemonEnv) -> None:
    """Start the new instance, stop the old one (SIGTERM), with mail arriving throughout."""
    env = pg_env
    old = Instance(env, "old")
    new: Instance | None = None
    try:
        wait_for("the old instance to lead", lambda: leader(env) == "old", 30)
        deliver_requests(env, complete=5, incomplete=2)
        new = Instance(env, "new")
        wait_for("the new instance to register",
                 lambda: env.sql("select 1 from instances where id = 'new'"), 30)
        assert old.stop() == 0
        deliver_requests(env, complete=5, incomplete=0, start=5)
        wait_for("the new instance to lead", lambda: leader(env) == "new", 10)
        wait_for("everything confirmed", lambda: done(env, 10, 2), 60)
        assert_nothing_doubled_or_lost(env, 10, 2)
        assert env.sql("select id from instances") == [("new",)]  # old deregistered
    finally:
        codes = [i.stop() for i in (old, new) if i is not None and i.proc.returncode is None]
    assert all(code == 0 for code in codes)
