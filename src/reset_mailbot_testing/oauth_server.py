"""A small OAuth 2.0 authorization server for the tests (issue #16): real HTTP, real tokens.

- `POST /token` (RFC 6749 4.4, client credentials; the client authenticates with HTTP Basic or
  with `client_id`/`client_secret` in the form): a random bearer token for the client's mail
  user, with `expires_in`;
- `POST /introspect` (RFC 7662; what Dovecot's oauth2 passdb asks with
  `introspection_mode = post`): `{"active": true, "username": ..., "scope": ...}` for a live
  token, `{"active": false}` for an unknown, expired or revoked one;
- `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` at `/token`: a service account's
  signed assertion for a delegated user, as Google's token endpoint takes it (google-auth);
- the Microsoft identity platform's shape, for msal: `GET /<tenant>/v2.0/.well-known/
  openid-configuration` and `POST /<tenant>/oauth2/v2.0/token` (msal wants https: start it
  with `tls=(certificate, key)`).

Tests revoke tokens, shorten their lifetime and read what was issued and asked.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Client:
    secret: str
    user: str  # the mailbox the client's tokens are for
    scope: str = "mail"
    certificate_pem: bytes | None = None  # a client that may sign an assertion instead


@dataclass
class ServiceAccount:
    """A Google-style service account: JWT assertions signed with its key (RFC 7523) may ask
    for tokens for the users of `delegated` (domain-wide delegation)."""

    public_key_pem: bytes
    delegated: frozenset[str]
    scope: str = "https://mail.google.com/"


@dataclass
class Issued:
    token: str
    client_id: str
    user: str
    scope: str
    expires_at: float
    revoked: bool = False


@dataclass
class OAuthServer:
    """Start with `start()` (or as a context manager); `url` is its base URL."""

    clients: dict[str, Client] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)  # by client_email
    lifetime_seconds: float = 3600.0
    issued: list[Issued] = field(default_factory=list)
    introspections: int = 0
    tls: tuple[str, str] | None = None  # (certificate file, key file): serve https
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> OAuthServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, name="oauth-server",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def discovery(self, tenant: str) -> dict[str, Any]:
        base = f"{self.url}/{tenant}"
        return {"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "client_secret_basic"]}

    def revoke_all(self) -> None:
        with self._lock:
            for issued in self.issued:
                issued.revoked = True

    # -- endpoints ------------------------------------------------------------------------------

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_bearer(form.get("assertion", ""))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client = self.clients.get(client_id)
        if client is not None and "client_assertion" in form:  # RFC 7523 2.2, as Entra ID
            if not self._assertion_ok(client, client_id, form):
                return 401, {"error": "invalid_client", "error_description": "assertion"}
        elif client is None or not secrets.compare_digest(client.secret, secret):
            return 401, {"error": "invalid_client"}
        scope = form.get("scope", client.scope)
        if scope != client.scope:
            return 400, {"error": "invalid_scope"}
        issued = Issued(secrets.token_urlsafe(24), client_id, client.user, scope,
                        time.time() + self.lifetime_seconds)
        with self._lock:
            self.issued.append(issued)
        return 200, {"access_token": issued.token, "token_type": "Bearer",
                     "expires_in": int(self.lifetime_seconds), "scope": scope}

    def _assertion_ok(self, client: Client, client_id: str, form: dict[str, str]) -> bool:
        """A client assertion signed with the key of the client's registered certificate,
        for this client (iss, sub), not expired."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if client.certificate_pem is None or form.get("client_assertion_type") != (
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"):
            return False
        try:
            head, body, signature = form["client_assertion"].split(".")
            claims = json.loads(_b64url(body))
        except ValueError:
            return False
        key = x509.load_pem_x509_certificate(client.certificate_pem).public_key()
        try:
            key.verify(_b64url(signature), f"{head}.{body}".encode(),  # type: ignore[union-attr]
                       padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]
        except InvalidSignature:
            return False
        return (claims.get("iss") == claims.get("sub") == client_id
                and float(claims.get("exp", 0)) > time.time())

    def _jwt_bearer(self, assertion: str) -> tuple[int, dict[str, Any]]:
        """RFC 7523 as Google's token endpoint does it: the assertion is signed (RS256) by the
        service account (iss), names the user to act as (sub) and the scope."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        part = _b64url
        try:
            head, body, signature = assertion.split(".")
            claims = json.loads(part(body))
            if json.loads(part(head)).get("alg") != "RS256":
                return 400, {"error": "invalid_grant", "error_description": "alg"}
        except ValueError:
            return 400, {"error": "invalid_grant", "error_description": "not a JWT"}
        account = self.service_accounts.get(str(claims.get("iss")))
        if account is None:
            return 401, {"error": "invalid_client"}
        key = serialization.load_pem_public_key(account.public_key_pem)
        try:
            key.verify(part(signature), f"{head}.{body}".encode(),  # type: ignore[union-attr]
                       padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]
        except InvalidSignature:
            return 400, {"error": "invalid_grant", "error_description": "bad signature"}
        if float(claims.get("exp", 0)) < time.time():
            return 400, {"error": "invalid_grant", "error_description": "expired assertion"}
        subject = str(claims.get("sub", ""))
        if subject not in account.delegated:
            return 401, {"error": "unauthorized_client",
                         "error_description": "no domain-wide delegation for this user"}
        if claims.get("scope") != account.scope:
            return 400, {"error": "invalid_scope"}
        issued = Issued(secrets.token_urlsafe(24), str(claims["iss"]), subject, account.scope,
                        time.time() + self.lifetime_seconds)
        with self._lock:
            self.issued.append(issued)
        return 200, {"access_token": issued.token, "token_type": "Bearer",
                     "expires_in": int(self.lifetime_seconds)}

    def introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.introspections += 1
            found = next((i for i in self.issued if i.token == form.get("token")), None)
        if found is None or found.revoked or found.expires_at <= time.time():
            return 200, {"active": False}
        return 200, {"active": True, "username": found.user, "scope": found.scope,
                     "client_id": found.client_id, "exp": int(found.expires_at)}


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _handler(server: OAuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self._answer(200, server.discovery(parts[0]))
            else:
                self._answer(404, {"error": "not_found"})

        def _answer(self, status: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            form = dict(urllib.parse.parse_qsl(body))
            if self.path == "/token" or self.path.endswith("/oauth2/v2.0/token"):
                status, answer = server.token(form, self.headers.get("Authorization"))
            elif self.path == "/introspect":
                status, answer = server.introspect(form)
            else:
                status, answer = 404, {"error": "not_found"}
            self._answer(status, answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
