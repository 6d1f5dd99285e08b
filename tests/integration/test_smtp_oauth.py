"""SMTP AUTH with OAuth 2.0 (issue #16, part): our sender against the aiosmtpd sink, which
accepts XOAUTH2 and OAUTHBEARER only for tokens the real authorization server
(reset_mailbot_testing.oauth_server) says are live and for that mailbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reset_mailbot.adapters.oauth import ClientCredentialsTokens
from reset_mailbot.adapters.smtp import SmtpConfigurationError, SmtpSender
from reset_mailbot_testing.oauth_server import Client, OAuthServer
from reset_mailbot_testing.smtp_sink import SmtpSink

pytestmark = pytest.mark.services

USER = "support@forus.test"
RAW = b"From: support@forus.test\r\nTo: a@utrecht.nl\r\nSubject: x\r\n\r\nhallo\r\n"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer(clients={"reset-mailbot": Client("client-secret", USER, scope="smtp"),
                              "other": Client("other-secret", "else@forus.test",
                                              scope="smtp")}) as server:
        yield server


@pytest.fixture
def bearer_sink(smtp_sink: SmtpSink, oauth: OAuthServer) -> SmtpSink:
    def live(user: str, token: str) -> bool:
        _, answer = oauth.introspect({"token": token})
        return bool(answer["active"]) and answer["username"] == user

    smtp_sink.bearer = live
    return smtp_sink


def sender(sink: SmtpSink, tokens: ClientCredentialsTokens, sasl: str = "XOAUTH2",
           ) -> SmtpSender:
    return SmtpSender(sink.host, sink.port, "none", USER, None, timeout=5, from_address=USER,
                      tokens=tokens, sasl=sasl)


def tokens(oauth: OAuthServer, client: str = "reset-mailbot",
           secret: str = "client-secret") -> ClientCredentialsTokens:
    return ClientCredentialsTokens(oauth.url + "/token", client, secret, "smtp")


@pytest.mark.parametrize("sasl", ["XOAUTH2", "OAUTHBEARER"])
def test_a_reply_is_sent_with_a_bearer_token(bearer_sink: SmtpSink, oauth: OAuthServer,
                                             sasl: str) -> None:
    source = tokens(oauth)
    sender(bearer_sink, source, sasl).send(RAW, ["a@utrecht.nl"])
    sender(bearer_sink, source, sasl).send(RAW, ["a@utrecht.nl"])
    stored = bearer_sink.wait_for(2)
    assert [meta["auth_user"] for meta, _ in stored] == [USER, USER]
    assert source.fetched == 1


def test_a_revoked_token_is_replaced_once(bearer_sink: SmtpSink, oauth: OAuthServer) -> None:
    source = tokens(oauth)
    source.token()
    oauth.revoke_all()
    sender(bearer_sink, source).send(RAW, ["a@utrecht.nl"])
    assert len(bearer_sink.wait_for(1)) == 1 and source.fetched == 2


def test_refusals_are_configuration_errors(bearer_sink: SmtpSink, oauth: OAuthServer) -> None:
    with pytest.raises(SmtpConfigurationError, match="refused XOAUTH2 twice"):
        sender(bearer_sink, tokens(oauth, "other", "other-secret")).send(RAW, ["a@utrecht.nl"])
    with pytest.raises(SmtpConfigurationError, match=r"no OAuth token: .*invalid_client"):
        sender(bearer_sink, tokens(oauth, secret="wrong")).send(RAW, ["a@utrecht.nl"])
    assert bearer_sink.messages() == []
