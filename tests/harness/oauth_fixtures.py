"""OAuth 2.0 harness (issue #16): a real authorization server and a Dovecot whose oauth2 passdb
introspects its tokens, for the IMAP adapter tests and the daemon's end-to-end test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from reset_mailbot_testing.dovecot import Dovecot
from reset_mailbot_testing.oauth_server import Client, OAuthServer
from tests.harness.mail_fixtures import state_root

OAUTH_USER = "support@forus.test"  # the mailbox the tokens are for


@pytest.fixture(scope="session")
def oauth() -> Iterator[OAuthServer]:
    """Clients: `reset-mailbot` (secret `client-secret`, scope `imap`, tokens for OAUTH_USER)
    and `other-app` (tokens for another user). Tests that change `lifetime_seconds` or add
    service accounts put the lifetime back."""
    server = OAuthServer(clients={
        "reset-mailbot": Client("client-secret", OAUTH_USER, scope="imap"),
        "other-app": Client("other-secret", "someone@forus.test", scope="imap"),
    })
    with server:
        yield server


@pytest.fixture(scope="session")
def oauth_dovecot(oauth: OAuthServer) -> Iterator[Dovecot]:
    """A Dovecot accepting XOAUTH2/OAUTHBEARER for OAUTH_USER, checked against `oauth`."""
    root = state_root() / "oauth-dovecot"
    server = Dovecot(root / "dovecot", oauth2_introspection_url=oauth.url + "/introspect")
    server.start()
    try:
        server.add_user(OAUTH_USER, "a password nobody uses here")
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
