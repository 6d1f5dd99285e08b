"""A small OpenID Connect provider for the console's tests (issue #17): real HTTP, real tokens.

The authorization code flow with PKCE (S256), as the console's login uses it:

- `GET /.well-known/openid-configuration`: discovery (issuer = `url`);
- `GET /authorize`: checks the client, the exact redirect URI, `response_type=code`, the
  `openid` scope, `state`, `nonce` and an S256 `code_challenge` (a request without PKCE is
  refused), then shows a login form (`#username`, button `#login`; no password: the test
  users are named in the constructor);
- `POST /authorize` (the form): a one-time code, redirect to `redirect_uri?code=..&state=..`;
- `POST /token` (`grant_type=authorization_code`; client_secret_basic or client_secret_post):
  checks the code (one use, short life; a second use revokes what the first got), the
  redirect URI and the `code_verifier` against the challenge; answers an access token and an
  RS256 `id_token` (iss, sub, aud, exp, iat, nonce, at_hash, email, name, groups) signed with
  a key made at construction;
- `GET /jwks`: that key's public half (its `kid` is in the id_token's header);
- `GET /userinfo` with the access token as bearer.

Tests read what was asked and what came of it (`authorizations`, `token_requests`), change
users' groups between logins, and may slip claims into the next id_tokens (`extra_claims`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


@dataclass
class OidcClient:
    secret: str
    redirect_uris: list[str]  # compared exactly, as OIDC Core 3.1.2.1 asks


@dataclass
class OidcUser:
    email: str
    name: str
    groups: list[str] = field(default_factory=list)
    sub: str | None = None  # the subject; the username when not given


@dataclass
class AuthorizationRecord:
    """One `GET /authorize`, and what came of it (`error` is None when the form was shown)."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    error: str | None = None
    username: str | None = None  # who logged in through the form
    code: str | None = None  # the code the login issued


@dataclass
class TokenRecord:
    """One `POST /token`: how the client authenticated, and whether PKCE was verified."""

    client_id: str
    auth_method: str  # client_secret_basic, client_secret_post or none
    code: str
    redirect_uri: str | None
    code_verifier: str | None
    pkce_verified: bool = False
    error: str | None = None


@dataclass
class _Pending:
    """An authorization request waiting for the login form."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str
    record: AuthorizationRecord


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    username: str
    scope: str
    nonce: str
    code_challenge: str
    expires_at: float
    used: bool = False
    access_tokens: list[str] = field(default_factory=list)


@dataclass
class _AccessToken:
    username: str
    client_id: str
    scope: str
    expires_at: float
    revoked: bool = False


@dataclass
class OidcProvider:
    """Start with `start()` (or as a context manager); `url` is its base URL and its issuer.

    `clients` by client_id, `users` by the username typed into the login form."""

    clients: dict[str, OidcClient] = field(default_factory=dict)
    users: dict[str, OidcUser] = field(default_factory=dict)
    lifetime_seconds: float = 3600.0  # access tokens and id_tokens
    code_lifetime_seconds: float = 60.0
    extra_claims: dict[str, Any] = field(default_factory=dict)  # merged into id_tokens
    authorizations: list[AuthorizationRecord] = field(default_factory=list)
    token_requests: list[TokenRecord] = field(default_factory=list)
    userinfo_requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid: str = field(default_factory=lambda: "test-" + secrets.token_hex(4))
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _tokens: dict[str, _AccessToken] = field(default_factory=dict)

    def start(self) -> OidcProvider:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="oidc-provider", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def discovery_url(self) -> str:
        return self.url + "/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "userinfo_endpoint": self.url + "/userinfo",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "at_hash",
                                 "email", "email_verified", "name", "groups"],
        }

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": _b64(_int_bytes(numbers.n)), "e": _b64(_int_bytes(numbers.e))}]}

    def revoke_all(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    # -- endpoints ------------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """The authorization request: (status, headers, HTML). Errors about the client or
        the redirect URI are shown, not redirected (OIDC Core 3.1.2.6); the others go back
        to the redirect URI with `error` and the state."""
        record = AuthorizationRecord(
            client_id=query.get("client_id", ""), redirect_uri=query.get("redirect_uri", ""),
            scope=query.get("scope", ""), state=query.get("state"), nonce=query.get("nonce"),
            code_challenge=query.get("code_challenge"),
            code_challenge_method=query.get("code_challenge_method"))
        with self._lock:
            self.authorizations.append(record)
        client = self.clients.get(record.client_id)
        if client is None:
            record.error = "unknown client"
            return _page(400, "Unknown client", f"No client {record.client_id!r}.")
        if record.redirect_uri not in client.redirect_uris:
            record.error = "unregistered redirect_uri"
            return _page(400, "Bad redirect URI",
                         f"{record.redirect_uri!r} is not registered for this client.")
        error = self._authorization_error(query)
        if error is not None:
            record.error = error
            return _redirect(record.redirect_uri, {
                "error": "unsupported_response_type" if error.startswith("response_type")
                else "invalid_scope" if error.startswith("scope") else "invalid_request",
                "error_description": error, **({"state": record.state} if record.state else {})})
        request_id = secrets.token_urlsafe(16)
        with self._lock:
            self._pending[request_id] = _Pending(
                record.client_id, record.redirect_uri, record.scope, query["state"],
                query["nonce"], query["code_challenge"], record)
        return _login_form(request_id, error=None)

    @staticmethod
    def _authorization_error(query: dict[str, str]) -> str | None:
        if query.get("response_type") != "code":
            return "response_type must be code"
        if "openid" not in query.get("scope", "").split():
            return "scope must contain openid"
        if not query.get("state"):
            return "state is required"
        if not query.get("nonce"):
            return "nonce is required"
        if not query.get("code_challenge"):
            return "code_challenge is required (PKCE)"
        if query.get("code_challenge_method") != "S256":
            return "code_challenge_method must be S256"
        return None

    def login(self, form: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """The login form's POST: a one-time code for the user, back to the client."""
        request_id, username = form.get("request", ""), form.get("username", "").strip()
        with self._lock:
            pending = self._pending.get(request_id)
            if pending is None:
                return _page(400, "Login expired", "This login request is unknown or used.")
            if username not in self.users:
                return _login_form(request_id, error=f"No user {username!r}.")
            del self._pending[request_id]
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(
                pending.client_id, pending.redirect_uri, username, pending.scope,
                pending.nonce, pending.code_challenge,
                time.time() + self.code_lifetime_seconds)
            pending.record.username, pending.record.code = username, code
        return _redirect(pending.redirect_uri, {"code": code, "state": pending.state})

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        auth_method = "client_secret_post" if secret is not None else "none"
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                return 401, {"error": "invalid_client"}
            client_id, _, secret = decoded.partition(":")
            client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
            auth_method = "client_secret_basic"
        record = TokenRecord(client_id, auth_method, form.get("code", ""),
                             form.get("redirect_uri"), form.get("code_verifier"))
        with self._lock:
            self.token_requests.append(record)
            status, answer = self._exchange(record, secret, form)
        if status != 200:
            record.error = answer["error"]
        return status, answer

    def _exchange(self, record: TokenRecord, secret: str | None,
                  form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = self.clients.get(record.client_id)
        if (client is None or secret is None
                or not secrets.compare_digest(client.secret.encode(), secret.encode())):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        code = self._codes.get(record.code)
        if code is None or code.client_id != record.client_id:
            return 400, {"error": "invalid_grant", "error_description": "unknown code"}
        if code.used:  # RFC 6749 4.1.2: a code used twice revokes what it gave
            for token in code.access_tokens:
                self._tokens[token].revoked = True
            return 400, {"error": "invalid_grant", "error_description": "code already used"}
        code.used = True
        if code.expires_at <= time.time():
            return 400, {"error": "invalid_grant", "error_description": "code expired"}
        if record.redirect_uri != code.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        if not record.code_verifier:
            return 400, {"error": "invalid_grant", "error_description": "code_verifier missing"}
        challenge = _b64(hashlib.sha256(record.code_verifier.encode("ascii")).digest())
        if not secrets.compare_digest(challenge, code.code_challenge):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        record.pkce_verified = True
        user = self.users[code.username]
        now = time.time()
        access_token = secrets.token_urlsafe(24)
        self._tokens[access_token] = _AccessToken(code.username, record.client_id, code.scope,
                                                  now + self.lifetime_seconds)
        code.access_tokens.append(access_token)
        claims = {
            "iss": self.url, "sub": user.sub or code.username, "aud": record.client_id,
            "iat": int(now), "exp": int(now + self.lifetime_seconds), "auth_time": int(now),
            "nonce": code.nonce,
            "at_hash": _b64(hashlib.sha256(access_token.encode()).digest()[:16]),
            "email": user.email, "email_verified": True, "name": user.name,
            "groups": list(user.groups), **self.extra_claims}
        return 200, {"access_token": access_token, "token_type": "Bearer",
                     "expires_in": int(self.lifetime_seconds), "scope": code.scope,
                     "id_token": self.sign(claims)}

    def sign(self, claims: dict[str, Any]) -> str:
        """An RS256 JWS of `claims` with the provider's key (the kid of `jwks()`)."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = (_b64(json.dumps(header).encode()) + "."
                         + _b64(json.dumps(claims).encode()))
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature)

    def userinfo(self, authorization: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.userinfo_requests += 1
            bearer = (authorization or "")[7:] if (authorization or "").lower().startswith(
                "bearer ") else ""
            token = self._tokens.get(bearer)
            if token is None or token.revoked or token.expires_at <= time.time():
                return 401, {"error": "invalid_token"}
            user = self.users[token.username]
        return 200, {"sub": user.sub or token.username, "email": user.email,
                     "email_verified": True, "name": user.name, "groups": list(user.groups)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _redirect(redirect_uri: str, params: dict[str, str]) -> tuple[int, dict[str, str], str]:
    separator = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
    return 302, {"Location": redirect_uri + separator + urllib.parse.urlencode(params)}, ""


def _page(status: int, title: str, text: str) -> tuple[int, dict[str, str], str]:
    return status, {}, (f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
                        f"<body><h1>{html.escape(title)}</h1>"
                        f"<p id=\"error\">{html.escape(text)}</p></body></html>")


def _login_form(request_id: str, error: str | None) -> tuple[int, dict[str, str], str]:
    message = f'<p id="error">{html.escape(error)}</p>' if error else ""
    return 200, {}, (
        "<!doctype html><html><head><title>Test OpenID provider: log in</title></head><body>"
        f"<h1>Log in</h1>{message}"
        '<form method="post" action="/authorize">'
        f'<input type="hidden" name="request" value="{html.escape(request_id)}">'
        '<label for="username">Username</label> '
        '<input id="username" name="username" autocomplete="username" autofocus> '
        '<button id="login" type="submit">Log in</button></form></body></html>')


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            if split.path == "/.well-known/openid-configuration":
                self._json(200, provider.discovery())
            elif split.path == "/jwks":
                self._json(200, provider.jwks())
            elif split.path == "/userinfo":
                self._userinfo()
            elif split.path == "/authorize":
                self._html(*provider.authorize(dict(urllib.parse.parse_qsl(split.query))))
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            path = urllib.parse.urlsplit(self.path).path
            if path == "/token":
                self._json(*provider.token(form, self.headers.get("Authorization")))
            elif path == "/authorize":
                self._html(*provider.login(form))
            elif path == "/userinfo":
                self._userinfo()
            else:
                self._json(404, {"error": "not_found"})

        def _userinfo(self) -> None:
            status, answer = provider.userinfo(self.headers.get("Authorization"))
            extra = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else {}
            self._json(status, answer, extra)

        def _json(self, status: int, answer: dict[str, Any],
                  extra: dict[str, str] | None = None) -> None:
            headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
            self._send(status, {**headers, **(extra or {})}, json.dumps(answer).encode())

        def _html(self, status: int, headers: dict[str, str], body: str) -> None:
            self._send(status, {"Content-Type": "text/html; charset=utf-8", **headers},
                       body.encode())

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
