"""CSRF protection and the security headers of every console response.

**CSRF.** Each session holds a random token; every form carries it in a hidden field and
every POST whose field does not match (constant-time compare) is refused with 403 before the
handler runs. The `Origin` header, when the browser sends one, must be the console's own
origin too (defence in depth; SameSite=Lax cookies are the third layer). No action is ever
reachable over GET: a GET shows a confirmation form at most.

**Headers.** A Content-Security-Policy that allows no script at all (the console has none),
styles and images only from itself, forms only to itself, and no framing; plus nosniff, no
referrer to other sites, and `no-store` so a shared computer's back button shows no
resident's address.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_FIELD = "csrf_token"
_SESSION_KEY = "csrf"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
))

HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # not "no-referrer": with it a browser sends `Origin: null` on our own form posts
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's token, made on first use."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], submitted: object) -> bool:
    expected = session.get(_SESSION_KEY)
    return (isinstance(expected, str) and isinstance(submitted, str) and len(expected) >= 32
            and hmac.compare_digest(expected.encode(), submitted.encode()))


def origin_ok(origin: str | None, base_url: str) -> bool:
    """A missing Origin is accepted (old browsers, same-origin GET-less forms); a present one
    must be ours exactly."""
    if origin is None:
        return True
    ours = urlsplit(base_url)
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)


class SecurityHeaders:
    """ASGI middleware: sets HEADERS on every HTTP response (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name == "cache-control" and scope["path"].startswith("/static/"):
                        headers[name] = "public, max-age=3600"
                        continue
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
