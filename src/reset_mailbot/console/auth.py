"""Who is logged in: OpenID Connect, a trusted proxy header, or the demo login.

**OpenID Connect** (`auth = "oidc"`): authorization code flow with PKCE (S256) through
authlib's Starlette client, against any provider with a discovery document (Microsoft Entra
ID, Google). authlib checks the ID token's signature against the provider's JWKS and its
issuer, audience, expiry and nonce. The person is the token's `email` (Entra ID without an
`email` claim: `preferred_username`); an address the provider says is unverified is refused.
The session is cleared at login (no fixation) and keeps the identity, name and groups; the
role is looked up in the configuration on every request, so taking a role away takes effect
at once.

**Trusted header** (`auth = "trusted_header"`): behind an authenticating proxy
(oauth2-proxy), which sets `trusted_user_header` (and the groups header). The header is
believed only when the connection comes from one of `trusted_proxies`; from anywhere else the
request is refused, header or not.

**Demo** (`reset-mailbot console --demo`, loopback only): a form where you type who you are
and pick a role, so `make demo` shows the console without an identity provider. The server
refuses to start in demo mode on a non-loopback address, and refuses demo requests from
non-loopback clients.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request

from reset_mailbot.config import ConsoleSettings
from reset_mailbot.console.roles import Person, Role, parse_role, role_for

Mode = Literal["oidc", "trusted_header", "demo"]
SESSION_USER = "user"


@dataclass(frozen=True)
class AuthSettings:
    mode: Mode
    console: ConsoleSettings

    @property
    def uses_session_login(self) -> bool:
        return self.mode in ("oidc", "demo")


class NotAllowed(Exception):
    """Authenticated (or not) but refused: the page says why, with 403."""


def _client_ip(request: Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = request.client.host if request.client else None
    try:
        return ipaddress.ip_address(host) if host else None
    except ValueError:
        return None


def from_trusted_proxy(request: Request, proxies: list[str]) -> bool:
    ip = _client_ip(request)
    return ip is not None and any(ip in ipaddress.ip_network(p, strict=False) for p in proxies)


def is_loopback_client(request: Request) -> bool:
    ip = _client_ip(request)
    return ip is not None and ip.is_loopback


def identity_from_claims(claims: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(identity, display name, groups) from ID token claims; NotAllowed without an address."""
    if claims.get("email_verified") is False:
        raise NotAllowed("the identity provider says this e-mail address is not verified")
    identity = claims.get("email") or claims.get("preferred_username") or ""
    identity = " ".join(str(identity).split()).lower()
    if "@" not in identity:
        raise NotAllowed("the identity provider gave no e-mail address for this login")
    name = " ".join(str(claims.get("name") or identity).split())
    return identity, name, claims_groups(claims)


def claims_groups(claims: dict[str, Any], claim: str = "groups") -> list[str]:
    groups = claims.get(claim) or []
    if isinstance(groups, str):
        groups = [groups]
    return [str(g) for g in groups if isinstance(g, str | int)]


def start_session(request: Request, identity: str, name: str, groups: list[str],
                  via: Mode, role: str | None = None) -> None:
    """A fresh session for a new login: nothing of the anonymous one survives (fixation)."""
    request.session.clear()
    request.session[SESSION_USER] = {
        "identity": identity, "name": name, "groups": groups[:200], "via": via,
        "role": role, "at": int(time.time()),
    }


def current_person(request: Request, auth: AuthSettings) -> Person | None:
    """The logged-in person, or None (not logged in). NotAllowed: refuse this request."""
    console = auth.console
    if auth.mode == "trusted_header":
        if not from_trusted_proxy(request, console.trusted_proxies):
            raise NotAllowed("requests must come through the authenticating proxy")
        identity = " ".join(request.headers.get(console.trusted_user_header, "").split()).lower()
        if "@" not in identity:
            raise NotAllowed(f"the proxy sent no {console.trusted_user_header} header")
        groups: list[str] = []
        if console.trusted_groups_header:
            raw = request.headers.get(console.trusted_groups_header, "")
            groups = [g.strip() for g in raw.split(",") if g.strip()]
        role = role_for(identity, groups, console.roles, console.role_groups)
        if role is None:
            raise NotAllowed(f"{identity} has no role in this console ([console] roles)")
        return Person(identity, identity, role)
    if auth.mode == "demo" and not is_loopback_client(request):
        raise NotAllowed("the demo console answers loopback clients only")
    user = request.session.get(SESSION_USER)
    if not isinstance(user, dict) or user.get("via") != auth.mode:
        return None
    if time.time() - float(user.get("at", 0)) > console.session_hours * 3600:
        request.session.clear()
        return None
    identity, name = str(user.get("identity", "")), str(user.get("name", ""))
    if auth.mode == "demo":
        try:
            return Person(identity, name, parse_role(str(user.get("role"))))
        except KeyError:
            return None
    role = role_for(identity, user.get("groups") or [], console.roles, console.role_groups)
    if role is None:
        request.session.clear()
        raise NotAllowed(f"{identity} has no role in this console ([console] roles)")
    return Person(identity, name, role)


DEMO_ROLES = tuple(r.label for r in Role)
