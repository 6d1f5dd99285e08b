"""The IMAP server restarts while the daemon runs: it reconnects and loses nothing.

Uses a private Dovecot (not the session one) so it can be stopped and started again with the
same ports and mail store, as an operator's `systemctl restart dovecot` would.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from reset_mailbot_testing.dovecot import Dovecot, wait_for_port
from tests.e2e.daemon_env import CLI, DaemonEnv
from tests.e2e.test_daemon import INCOMPLETE_BODY, kinds
from tests.harness.mail_fixtures import Mailbox


@pytest.fixture
def private_dovecot() -> Iterator[Dovecot]:
    server = Dovecot(Path(f"/tmp/reset-mailbot-restart-{os.getpid()}-{uuid.uuid4().hex[:6]}"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.state_dir, ignore_errors=True)


def restart_keeping_state(server: Dovecot) -> None:
    """Stop the master and start it again on the same config, ports and mail store."""
    server.stop()
    # Dovecot's imap processes outlive their master; a real restart (systemd stops the whole
    # cgroup) ends them too, so end the ones serving our port.
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{server.imap_port} )"],
        capture_output=True, text=True, check=True,
    ).stdout
    for pid in {int(p) for p in re.findall(r"pid=(\d+)", listing)}:
        os.kill(pid, signal.SIGKILL)
    time.sleep(3)  # the daemon notices the dropped connection while the server is down
    assert server.binary is not None
    subprocess.run([server.binary, "-c", str(server.config_path)], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wait_for_port(server.imap_port, time.monotonic() + 15)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_daemon_survives_an_imap_restart(env: DaemonEnv, private_dovecot: Dovecot) -> None:
    address, password = f"support-restart@{'forus.test'}", uuid.uuid4().hex
    private_dovecot.add_user(address, password)
    local = replace(env, mailbox=Mailbox(private_dovecot, address, password),
                    poll_interval_seconds=2)
    local.cli("db", "upgrade")
    proc = subprocess.Popen(
        [*CLI, "run", "--config", str(local.config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")},
    )
    try:
        local.deliver(local.request(INCOMPLETE_BODY))
        local.sink.wait_for(1, timeout=20)
        restart_keeping_state(private_dovecot)
        local.deliver(local.request(INCOMPLETE_BODY))
        local.sink.wait_for(2, timeout=60)
        assert kinds(local) == ["incomplete", "incomplete"]
        assert local.folder("INBOX") == []
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "\"event\": \"imap_reconnect\"" in err, err[-4000:]
