"""`reset-mailbot run` on a mailbox that accepts OAuth 2.0 only (issue #16): IMAP (poller and
IDLE watcher) through a Dovecot whose oauth2 passdb introspects a real authorization server,
SMTP AUTH XOAUTH2 at the sink. The token expires and the server drops every session mid-run:
the daemon logs in again with a fresh token and the next request is answered without waiting
for the poll interval."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reset_mailbot_testing.dovecot import Dovecot
from reset_mailbot_testing.forus_http import FakeForus
from reset_mailbot_testing.oauth_server import OAuthServer
from reset_mailbot_testing.smtp_sink import SmtpSink
from tests.e2e.daemon_env import CLI, SUPPORT, DaemonEnv, sqlite_url
from tests.e2e.test_daemon import INCOMPLETE_BODY
from tests.harness.mail_fixtures import Mailbox

pytestmark = pytest.mark.services


def test_the_daemon_logs_in_again_with_a_fresh_token_after_expiry(
    tmp_path: Path, oauth: OAuthServer, oauth_dovecot: Dovecot, smtp_sink: SmtpSink,
    clean_dns: Any,
) -> None:
    def live(user: str, token: str) -> bool:
        _, answer = oauth.introspect({"token": token})
        return bool(answer["active"]) and answer["username"] == user

    smtp_sink.bearer = live
    oauth.lifetime_seconds = 4.0  # renewed 2 s before: a new token every ~2 s of logins
    mailbox = Mailbox(oauth_dovecot, SUPPORT, "")
    with FakeForus() as forus:
        env = DaemonEnv(tmp_path, mailbox, smtp_sink, clean_dns, forus, sqlite_url(tmp_path),
                        poll_interval_seconds=120)  # only IDLE can be this quick
        env.cli("db", "upgrade")
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
        environ.update({
            "RESET_MAILBOT_MAILBOX__AUTH": "oauth2", "RESET_MAILBOT_MAILBOX__PASSWORD": "",
            "RESET_MAILBOT_SMTP__AUTH": "oauth2", "RESET_MAILBOT_SMTP__USERNAME": SUPPORT,
            "RESET_MAILBOT_OAUTH2__TOKEN_URL": oauth.url + "/token",
            "RESET_MAILBOT_OAUTH2__CLIENT_ID": "reset-mailbot",
            "RESET_MAILBOT_OAUTH2__CLIENT_SECRET": "client-secret",
            "RESET_MAILBOT_OAUTH2__SCOPE": "imap", "RESET_MAILBOT_METRICS__LISTEN": "",
        })
        log_path = tmp_path / "daemon.log"
        with log_path.open("w") as log:
            daemon = subprocess.Popen([*CLI, "run", "--config", str(env.config_path)],
                                      stdout=log, stderr=log, env=environ)
        try:
            env.deliver(env.request(INCOMPLETE_BODY, subject="eerste"))
            smtp_sink.wait_for(1, timeout=30)
            issued = len(oauth.issued)
            time.sleep(4.5)  # every token the daemon holds has expired
            subprocess.run(["doveadm", "-c", str(oauth_dovecot.config_path), "kick", SUPPORT],
                           check=True, capture_output=True)  # sessions dropped mid-run
            sent = time.monotonic()
            env.deliver(env.request(INCOMPLETE_BODY, subject="tweede"))
            stored = smtp_sink.wait_for(2, timeout=60)
            took = time.monotonic() - sent
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            oauth.lifetime_seconds = 3600.0
    text = log_path.read_text()
    assert daemon.returncode == 0, text[-3000:]
    assert took < 30, (took, text[-3000:])  # IDLE, not the 120 s poll
    assert len(oauth.issued) > issued  # logged in again with a fresh token
    assert [meta["auth_user"] for meta, _ in stored] == [SUPPORT, SUPPORT]  # SMTP by token
    assert '"event": "imap_reconnect"' in text
