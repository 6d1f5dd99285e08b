"""OAuth 2.0 access tokens for IMAP and SMTP logins (issue #16): generic, microsoft, google.

`MicrosoftTokens` gets them from the Microsoft identity platform with msal (the app's client
credentials; Exchange Online grants the app the mailbox). `GoogleTokens` has a service account
with domain-wide delegation act as the support mailbox (google-auth). `ClientCredentialsTokens`
asks any other token endpoint with the client credentials grant (RFC 6749 4.4; client
authentication with HTTP Basic, 2.3.1). All keep a token until shortly before it expires;
`invalidate()`
drops it after a server refused it, so the next login fetches a fresh one (a token revoked or
expired early is replaced once, then the refusal is reported). Thread-safe: the poller, the
IDLE watcher and the SMTP sender share one source.

The SASL strings the IMAP and SMTP adapters send are built here too (XOAUTH2, RFC 7628
OAUTHBEARER), so both speak the same dialect.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

#: a token is renewed this long before the expiry its endpoint announced
REFRESH_MARGIN_SECONDS = 60.0


class TokenError(Exception):
    """No access token: the endpoint refused (wrong client, scope) or could not be reached."""


class TokenSource(Protocol):
    def token(self) -> str: ...

    def invalidate(self) -> None: ...


class ClientCredentialsTokens:
    """Access tokens from `token_url` for one client (the support mailbox's app registration)."""

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, scope: str | None = None,
        *, timeout: float = 10.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._valid_until = 0.0
        self.fetched = 0  # how many tokens were asked for (tests, doctor)

    def __repr__(self) -> str:  # never show the secret
        return (f"ClientCredentialsTokens(token_url={self.token_url!r}, "
                f"client_id={self.client_id!r})")

    def token(self) -> str:
        """A token that is valid for at least REFRESH_MARGIN_SECONDS more (fetched if not)."""
        with self._lock:
            if self._token is None or self._clock() >= self._valid_until:
                self._token, lifetime = self._fetch()
                margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
                self._valid_until = self._clock() + lifetime - margin
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        credentials = (f"{urllib.parse.quote(self.client_id, safe='')}:"
                       f"{urllib.parse.quote(self._secret, safe='')}")
        request = urllib.request.Request(
            self.token_url, data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json",
                     "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read(64 * 1024))
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read(2048).decode("utf-8", "replace")
            try:
                error = json.loads(body).get("error", "") or body[:200]
            except ValueError:
                error = body[:200]
            raise TokenError(f"token endpoint {self.token_url} answered {exc.code}: "
                             f"{error}") from None
        except (OSError, ValueError) as exc:
            raise TokenError(f"token endpoint {self.token_url}: {type(exc).__name__}: "
                             f"{exc}") from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError(f"token endpoint {self.token_url} sent no access_token")
        self.fetched += 1
        try:
            lifetime = float(answer.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        return token, max(1.0, lifetime)


#: where Microsoft Entra ID issues tokens (national clouds have their own hosts)
MICROSOFT_AUTHORITY_HOST = "https://login.microsoftonline.com"


class MicrosoftTokens:
    """Tokens for an Entra ID app registration (client credentials), from msal: msal does the
    tenant discovery and caches each token until shortly before it expires; `invalidate()`
    starts from an empty cache so the next login gets a fresh one."""

    def __init__(
        self, tenant_id: str, client_id: str, client_secret: str | None,
        scope: str = "https://outlook.office365.com/.default", *,
        authority_host: str = MICROSOFT_AUTHORITY_HOST, timeout: float = 10.0,
        certificate_file: Path | None = None,
    ) -> None:
        """`certificate_file`: a PEM file with the app's certificate and its private key,
        instead of `client_secret` (msal signs a client assertion with it)."""
        self.token_url = f"{authority_host.rstrip('/')}/{tenant_id}"  # the authority
        self.client_id = client_id
        self._secret: str | dict[str, str] | None = client_secret
        if certificate_file is not None:
            self._secret = _certificate_credential(certificate_file)
        if not self._secret:
            raise TokenError("a client secret or a certificate is needed")
        self.scope = scope
        self.timeout = timeout
        self._known_host = authority_host.rstrip("/") == MICROSOFT_AUTHORITY_HOST
        self._lock = threading.Lock()
        self._app: object | None = None
        self.fetched = 0

    def __repr__(self) -> str:  # never show the secret
        return f"MicrosoftTokens(authority={self.token_url!r}, client_id={self.client_id!r})"

    def token(self) -> str:
        import msal

        with self._lock:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self.client_id, client_credential=self._secret, authority=self.token_url,
                    timeout=self.timeout,
                    # another authority host (a national cloud, the tests) is one the
                    # operator named: msal need not ask Microsoft whether it exists
                    validate_authority=self._known_host,
                    instance_discovery=None if self._known_host else False,
                )
            app: msal.ConfidentialClientApplication = self._app  # type: ignore[assignment]
            try:
                result = app.acquire_token_for_client(scopes=[self.scope])
            except Exception as exc:  # msal raises requests' and its own errors
                self._app = None
                raise TokenError(f"{self.token_url}: {type(exc).__name__}: "
                                 f"{str(exc)[:300]}") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str) or not token:
            error = result.get("error", "no access_token") if isinstance(result, dict) else ""
            detail = (result.get("error_description") or "").splitlines()[:1] \
                if isinstance(result, dict) else []
            raise TokenError(f"{self.token_url} refused client {self.client_id}: {error}"
                             + (f" ({detail[0][:200]})" if detail else ""))
        if result.get("token_source") == "identity_provider":
            self.fetched += 1
        return token

    def invalidate(self) -> None:
        with self._lock:
            self._app = None


def _certificate_credential(path: Path) -> dict[str, str]:
    """msal's certificate credential from one PEM file: the private key, and the SHA-1
    thumbprint of the certificate (what Entra ID shows for an uploaded certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        pem = Path(path).read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TokenError(f"certificate file {path}: {type(exc).__name__}: {exc}") from None
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"private_key": key_pem,
            "thumbprint": certificate.fingerprint(hashes.SHA1()).hex(),  # an identifier only
            "public_certificate": certificate.public_bytes(
                serialization.Encoding.PEM).decode()}


class GoogleTokens:
    """Tokens for a Google Workspace mailbox from a service account with domain-wide
    delegation (google-auth): the account signs an assertion naming the support mailbox as its
    subject; google-auth refreshes shortly before expiry. The key file is read once, here."""

    def __init__(self, service_account_file: Path, subject: str,
                 scope: str = "https://mail.google.com/") -> None:
        from google.oauth2 import service_account

        try:
            info = json.loads(Path(service_account_file).read_text(encoding="utf-8"))
            self._credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[scope], subject=subject)
        except (OSError, ValueError, KeyError) as exc:
            raise TokenError(f"service account file {service_account_file}: "
                             f"{type(exc).__name__}: {exc}") from None
        self.token_url = str(info.get("token_uri", ""))
        self.client_id = self._credentials.service_account_email
        self.scope = scope
        self._lock = threading.Lock()
        self.fetched = 0

    def __repr__(self) -> str:
        return f"GoogleTokens(service_account={self.client_id!r})"

    def token(self) -> str:
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request

        with self._lock:
            if not self._credentials.valid:  # none yet, or within google-auth's refresh margin
                try:
                    self._credentials.refresh(Request())
                except (GoogleAuthError, OSError) as exc:
                    raise TokenError(f"{self.token_url}: {str(exc)[:300]}") from None
                self.fetched += 1
            return str(self._credentials.token)

    def invalidate(self) -> None:
        with self._lock:
            self._credentials.token = None  # not valid: the next token() refreshes


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial client response (Google's and Microsoft's IMAP/SMTP dialect)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user: str, token: str) -> str:
    """The RFC 7628 OAUTHBEARER initial client response."""
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01"
