"""IMAP login with OAuth 2.0 against a real Dovecot (issue #16, part): Dovecot's oauth2 passdb
asks a real authorization server (reset_mailbot_testing.oauth_server) to introspect the bearer
token our adapter got with the client credentials grant. XOAUTH2 and OAUTHBEARER, a revoked
token, a token that expires, a wrong secret, a wrong scope and a token for another mailbox."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from reset_mailbot.adapters.imap import Mailbox, MailboxAuthError
from reset_mailbot.adapters.oauth import ClientCredentialsTokens
from reset_mailbot_testing.dovecot import Dovecot
from reset_mailbot_testing.oauth_server import Client, OAuthServer
from tests.harness.mail_fixtures import state_root
from tests.harness.oauth_fixtures import OAUTH_USER

pytestmark = pytest.mark.services

USER = OAUTH_USER


@pytest.fixture
def dovecot(oauth_dovecot: Dovecot) -> Dovecot:
    """The harness's OAuth Dovecot (tests/harness/oauth_fixtures.py)."""
    return oauth_dovecot


def tokens(oauth: OAuthServer, client: str = "reset-mailbot", secret: str = "client-secret",
           scope: str = "imap") -> ClientCredentialsTokens:
    return ClientCredentialsTokens(oauth.url + "/token", client, secret, scope)


def mailbox(dovecot: Dovecot, source: ClientCredentialsTokens, sasl: str = "XOAUTH2") -> Mailbox:
    return Mailbox(dovecot.host, dovecot.imap_port, "none", USER, "", tokens=source, sasl=sasl,
                   timeout=10)


@pytest.mark.parametrize("sasl", ["XOAUTH2", "OAUTHBEARER"])
def test_login_with_a_bearer_token_and_one_token_for_many_logins(
    dovecot: Dovecot, oauth: OAuthServer, sasl: str
) -> None:
    source = tokens(oauth)
    dovecot.deliver(b"From: a@utrecht.nl\r\nSubject: x\r\n\r\nhallo\r\n", rcpt=USER)
    asked = oauth.introspections
    for _ in range(2):
        box = mailbox(dovecot, source, sasl)
        box.connect()
        try:
            box.select_inbox()
            assert box.list_uids_with_sizes()
        finally:
            box.close()
    assert source.fetched == 1  # cached between logins
    assert oauth.introspections == asked + 2  # Dovecot checked the token at each login


def test_a_revoked_token_is_replaced_once(dovecot: Dovecot, oauth: OAuthServer) -> None:
    source = tokens(oauth)
    source.token()
    oauth.revoke_all()  # the cached token is dead; the server does not say so in advance
    box = mailbox(dovecot, source)
    box.connect()
    box.close()
    assert source.fetched == 2


def test_an_expired_token_is_renewed_before_the_next_login(
    dovecot: Dovecot, oauth: OAuthServer
) -> None:
    oauth.lifetime_seconds = 2.0
    try:
        source = tokens(oauth)
        box = mailbox(dovecot, source)
        box.connect()
        box.close()
        time.sleep(2.1)  # renewed a second before expiry (half the lifetime, here)
        box.connect()
        box.close()
        assert source.fetched == 2
    finally:
        oauth.lifetime_seconds = 3600.0


@pytest.mark.parametrize(("client", "secret", "scope", "says"), [
    ("reset-mailbot", "wrong", "imap", "answered 401: invalid_client"),
    ("reset-mailbot", "client-secret", "mail.send", "answered 400: invalid_scope"),
])
def test_no_token_is_an_authentication_error(
    dovecot: Dovecot, oauth: OAuthServer, client: str, secret: str, scope: str, says: str
) -> None:
    box = mailbox(dovecot, tokens(oauth, client, secret, scope))
    with pytest.raises(MailboxAuthError, match=f"no OAuth token: .*{says}"):
        box.connect()
    assert not box.connected


def test_a_token_for_another_mailbox_is_refused_twice(
    dovecot: Dovecot, oauth: OAuthServer
) -> None:
    source = tokens(oauth, "other-app", "other-secret")
    box = mailbox(dovecot, source)
    with pytest.raises(MailboxAuthError, match="refused twice with a fresh token"):
        box.connect()
    assert source.fetched == 2


def test_the_configuration_and_doctor_log_in_with_oauth(
    dovecot: Dovecot, oauth: OAuthServer, tmp_path: object
) -> None:
    """`[mailbox] auth = "oauth2"` + `[oauth2]`: bootstrap builds the adapter, and doctor
    checks the token and the SASL login on separate lines."""
    from pathlib import Path

    from reset_mailbot import bootstrap
    from reset_mailbot.cli.doctor_checks import check_imap
    from reset_mailbot.config import load_config

    folder = Path(str(tmp_path))
    (folder / "secret").write_text("client-secret\n")
    path = folder / "c.toml"
    head = (f'[mailbox]\naddress = "{USER}"\nhost = "127.0.0.1"\nport = {dovecot.imap_port}\n'
            'security = "none"\nauth = "oauth2"\n')
    path.write_text(head + f'[oauth2]\ntoken_url = "{oauth.url}/token"\n'
                    'client_id = "reset-mailbot"\nclient_secret_file = "secret"\nscope = "imap"\n'
                    'sasl = "oauthbearer"\n')
    config = load_config(path)
    box = bootstrap.build_mailbox(config)
    box.connect()
    assert box.sasl == "OAUTHBEARER"
    box.close()
    lines = [c.line() for c in check_imap(config)]
    assert lines[0] == (f"PASS oauth2 token: issued by {oauth.url}/token to client "
                        "reset-mailbot")
    assert lines[1].startswith(f"PASS imap login: {USER} at 127.0.0.1:{dovecot.imap_port} "
                               "(none), OAUTHBEARER, IDLE yes")
    (folder / "secret").write_text("wrong\n")
    [line] = [c.line() for c in check_imap(load_config(path))]
    assert line.startswith("FAIL oauth2 token: token endpoint") and "invalid_client" in line
    path.write_text(head + "[oauth2]\n")
    [line] = [c.line() for c in check_imap(load_config(path))]
    assert line.startswith('FAIL oauth2 token: [oauth2] token_url is needed for auth = "oauth2"')


# --- provider "microsoft": msal against an https authority shaped like Entra ID -------------

TENANT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OUTLOOK = "https://outlook.office365.com/.default"


@pytest.fixture(scope="module")
def entra() -> Iterator[tuple[OAuthServer, Dovecot, str]]:
    """An https authorization server (self-signed; trusted through REQUESTS_CA_BUNDLE, as an
    operator behind a corporate CA would) and a Dovecot introspecting its tokens over https."""
    import os
    import subprocess

    root = state_root() / "imap-entra"
    root.mkdir(parents=True, mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    os.chmod(cert, 0o644)
    server = OAuthServer(clients={"app-id": Client("app-secret", USER, scope=OUTLOOK)},
                         tls=(str(cert), str(key)))
    with server:
        dovecot = Dovecot(root / "dovecot", oauth2_introspection_url=server.url + "/introspect",
                          oauth2_ca_file=cert)
        dovecot.start()
        try:
            dovecot.add_user(USER, "unused")
            yield server, dovecot, str(cert)
        finally:
            dovecot.stop()
            shutil.rmtree(root, ignore_errors=True)


def test_microsoft_provider_logs_in_with_an_msal_token(
    entra: tuple[OAuthServer, Dovecot, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reset_mailbot.adapters.oauth import MicrosoftTokens

    server, dovecot, ca = entra
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    source = MicrosoftTokens(TENANT, "app-id", "app-secret", authority_host=server.url)
    for _ in range(2):
        box = Mailbox(dovecot.host, dovecot.imap_port, "none", USER, "", tokens=source,
                      timeout=10)
        box.connect()
        box.select_inbox()
        box.close()
    assert source.fetched == 1  # msal's cache served the second login
    server.revoke_all()
    box = Mailbox(dovecot.host, dovecot.imap_port, "none", USER, "", tokens=source, timeout=10)
    box.connect()  # refused once, a fresh token from a fresh cache
    box.close()
    assert source.fetched == 2
    wrong = MicrosoftTokens(TENANT, "app-id", "not-the-secret", authority_host=server.url)
    with pytest.raises(MailboxAuthError, match="refused client app-id: invalid_client"):
        Mailbox(dovecot.host, dovecot.imap_port, "none", USER, "", tokens=wrong,
                timeout=10).connect()


# --- provider "google": a service account with domain-wide delegation (google-auth) ----------


def _service_account(oauth: OAuthServer, folder: object, delegated: frozenset[str]) -> object:
    import json
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from reset_mailbot_testing.oauth_server import ServiceAccount

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"reset-mailbot-{len(oauth.service_accounts)}@forus-mail.iam.gserviceaccount.com"
    oauth.service_accounts[email] = ServiceAccount(
        key.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo),
        delegated)
    path = Path(str(folder)) / f"{email}.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "forus-mail", "private_key_id": "k1",
        "private_key": key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "client_email": email, "client_id": "1234567890",
        "token_uri": f"{oauth.url}/token",
    }))
    return path


def test_google_provider_acts_as_the_mailbox_through_delegation(
    dovecot: Dovecot, oauth: OAuthServer, tmp_path: object
) -> None:
    from reset_mailbot.adapters.oauth import GoogleTokens

    allowed = _service_account(oauth, tmp_path, frozenset({USER}))
    source = GoogleTokens(allowed, USER)  # type: ignore[arg-type]
    for _ in range(2):
        box = mailbox(dovecot, source)
        box.connect()
        box.close()
    assert source.fetched == 1
    oauth.revoke_all()
    box = mailbox(dovecot, source)
    box.connect()  # refused once; google-auth signs a new assertion
    box.close()
    assert source.fetched == 2
    not_delegated = _service_account(oauth, tmp_path, frozenset({"someone@forus.test"}))
    with pytest.raises(MailboxAuthError, match=r"no OAuth token: .*unauthorized_client"):
        mailbox(dovecot, GoogleTokens(not_delegated, USER)).connect()  # type: ignore[arg-type]


def test_microsoft_provider_with_a_client_certificate(
    entra: tuple[OAuthServer, Dovecot, str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: object,
) -> None:
    """No secret: msal signs a client assertion with the certificate's key; the server
    checks it against the certificate registered for the app."""
    import datetime
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from reset_mailbot.adapters.oauth import MicrosoftTokens

    server, dovecot, ca = entra
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)

    def certificate() -> tuple[bytes, bytes]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reset-mailbot")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        return cert_pem, key_pem

    registered, key_pem = certificate()
    server.clients["cert-app"] = Client("", USER, scope=OUTLOOK, certificate_pem=registered)
    pem = Path(str(tmp_path)) / "app.pem"
    pem.write_bytes(registered + key_pem)
    source = MicrosoftTokens(TENANT, "cert-app", None, authority_host=server.url,
                             certificate_file=pem)
    box = Mailbox(dovecot.host, dovecot.imap_port, "none", USER, "", tokens=source, timeout=10)
    box.connect()
    box.close()
    assert source.fetched == 1
    other, other_key = certificate()  # a certificate Entra ID does not know for the app
    unknown = Path(str(tmp_path)) / "other.pem"
    unknown.write_bytes(other + other_key)
    stranger = MicrosoftTokens(TENANT, "cert-app", None, authority_host=server.url,
                               certificate_file=unknown)
    with pytest.raises(MailboxAuthError, match="invalid_client"):
        Mailbox(dovecot.host, dovecot.imap_port, "none", USER, "", tokens=stranger,
                timeout=10).connect()
