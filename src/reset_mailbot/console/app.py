"""The console as a Starlette application: middleware, login routes and the route table."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from authlib.integrations.starlette_client import OAuth, OAuthError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from reset_mailbot.console import actions, pages
from reset_mailbot.console.actions import _safe_back, form_action
from reset_mailbot.console.auth import (
    DEMO_ROLES,
    SESSION_USER,
    NotAllowed,
    current_person,
    identity_from_claims,
    is_loopback_client,
    start_session,
)
from reset_mailbot.console.deps import ConsoleDeps
from reset_mailbot.console.roles import Role, role_for
from reset_mailbot.console.security import CSRF_FIELD, SecurityHeaders, csrf_token
from reset_mailbot.console.web import deps, refused, render

HERE = Path(__file__).parent
COOKIE = "reset_mailbot_console"


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template is HTML; mail text can never become markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.globals["csrf_field"] = CSRF_FIELD
    env.globals["Role"] = Role
    env.globals["csrf_token"] = lambda request: csrf_token(request.session)
    return Jinja2Templates(env=env)


def _oauth(d: ConsoleDeps) -> OAuth:
    oauth = OAuth()
    s = d.settings
    oauth.register(
        "oidc",
        server_metadata_url=str(s.oidc_issuer).rstrip("/") + "/.well-known/openid-configuration",
        client_id=s.oidc_client_id,
        client_secret=s.oidc_client_secret,
        client_kwargs={"scope": s.oidc_scopes, "code_challenge_method": "S256"},
    )
    return oauth


def _next(request: Request) -> str:
    return _safe_back(request.query_params.get("next") or "", "/requests")


async def login_page(request: Request) -> Response:
    d = deps(request)
    if d.auth.mode == "trusted_header":
        return RedirectResponse("/requests", status_code=303)
    try:
        if current_person(request, d.auth) is not None:
            return RedirectResponse(_next(request), status_code=303)
    except NotAllowed as exc:
        return refused(request, str(exc))
    return render(request, "login.html", mode=d.auth.mode, next=_next(request),
                  roles=DEMO_ROLES)


async def login_oidc(request: Request) -> Response:
    d = deps(request)
    if d.auth.mode != "oidc":
        return refused(request, "OpenID Connect login is not configured", status_code=404)
    request.session["next"] = _next(request)
    client = request.app.state.oauth.create_client("oidc")
    return await client.authorize_redirect(request, d.settings.base_url + "/auth/callback")


async def oidc_callback(request: Request) -> Response:
    d = deps(request)
    if d.auth.mode != "oidc":
        return refused(request, "OpenID Connect login is not configured", status_code=404)
    client = request.app.state.oauth.create_client("oidc")
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        return refused(request, f"login failed: {exc.error}", status_code=401)
    claims: dict[str, Any] = dict(token.get("userinfo") or {})
    try:
        identity, name, _ = identity_from_claims(claims)
    except NotAllowed as exc:
        return refused(request, str(exc))
    groups = claims.get(d.settings.groups_claim) or []
    groups = [str(g) for g in (groups if isinstance(groups, list) else [groups])]
    if role_for(identity, groups, d.settings.roles, d.settings.role_groups) is None:
        request.session.clear()
        return refused(request, f"{identity} has no role in this console; ask an "
                                "administrator to add you to [console] roles")
    target = _safe_back(str(request.session.get("next") or ""), "/requests")
    # only the groups that carry a role: the session is a cookie (4 KB), and a tenant may
    # send hundreds of group ids
    known = {" ".join(g.split()).lower() for g in d.settings.role_groups}
    start_session(request, identity, name,
                  [g for g in groups if " ".join(g.split()).lower() in known], "oidc")
    return RedirectResponse(target, status_code=303)


@form_action
async def login_demo(request: Request, form: Any) -> Response:
    d = deps(request)
    if d.auth.mode != "demo" or not is_loopback_client(request):
        return refused(request, "the demo login exists only in `console --demo` on loopback",
                       status_code=404)
    identity = " ".join(str(form.get("identity") or "").split()).lower()
    role = str(form.get("role") or "")
    if "@" not in identity or role not in DEMO_ROLES:
        return render(request, "login.html", status_code=400, mode="demo", next="/requests",
                      roles=DEMO_ROLES, error="type an e-mail address and pick a role")
    start_session(request, identity, identity, [], "demo", role=role)
    return RedirectResponse(_safe_back(str(form.get("next") or ""), "/requests"),
                            status_code=303)


@form_action
async def logout(request: Request, form: Any) -> Response:
    request.session.pop(SESSION_USER, None)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def home(request: Request) -> Response:
    return RedirectResponse("/requests", status_code=303)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def routes() -> list[Route | Mount]:
    return [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/login", login_page),
        Route("/login/oidc", login_oidc),
        Route("/login/demo", login_demo, methods=["POST"]),
        Route("/auth/callback", oidc_callback),
        Route("/logout", logout, methods=["POST"]),
        Route("/requests", pages.requests_page),
        Route("/requests/{request_id}", pages.request_page),
        Route("/requests/{request_id}/{action}", actions.confirm_request_action),
        Route("/requests/{request_id}/{action}", actions.do_request_action, methods=["POST"]),
        Route("/messages", pages.messages_page),
        Route("/messages/{message_id:int}", pages.message_page),
        Route("/messages/{message_id:int}/reprocess", actions.confirm_reprocess),
        Route("/messages/{message_id:int}/reprocess", actions.do_reprocess, methods=["POST"]),
        Route("/replies", pages.replies_page),
        Route("/replies/{reply_id:int}/resend", actions.confirm_resend),
        Route("/replies/{reply_id:int}/resend", actions.do_resend, methods=["POST"]),
        Route("/stats", pages.stats_page),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def build_app(d: ConsoleDeps, session_secret: str) -> Starlette:
    """The console for `d`. `session_secret` signs the session cookie (32+ characters)."""
    secure = urlsplit(d.settings.base_url).scheme == "https"
    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(SessionMiddleware, secret_key=session_secret, session_cookie=COOKIE,
                       max_age=int(d.settings.session_hours * 3600), same_site="lax",
                       https_only=secure),
        ],
    )
    app.state.deps = d
    app.state.templates = _templates()
    app.state.oauth = _oauth(d) if d.auth.mode == "oidc" else None
    return app


__all__ = ["COOKIE", "Role", "build_app"]
