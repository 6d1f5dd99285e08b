"""What every console handler shares: the guard that checks the role, rendering, and errors."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from reset_mailbot.console.auth import NotAllowed, current_person
from reset_mailbot.console.deps import ConsoleDeps
from reset_mailbot.console.roles import Person, Role

Handler = Callable[..., Any]


def deps(request: Request) -> ConsoleDeps:
    return request.app.state.deps  # type: ignore[no-any-return]


def person(request: Request) -> Person:
    return request.state.person  # type: ignore[no-any-return]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    context.setdefault("person", getattr(request.state, "person", None))
    context.setdefault("flash", request.session.pop("flash", None))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def refused(request: Request, message: str, status_code: int = 403) -> Response:
    return render(request, "refused.html", status_code=status_code, message=message)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _check(request: Request, needed: Role) -> Response | None:
    try:
        who = current_person(request, deps(request).auth)
    except NotAllowed as exc:
        return refused(request, str(exc))
    if who is None:
        return _login_redirect(request)
    request.state.person = who
    if not who.may(needed):
        return refused(request, f"this needs the {needed.label} role; you are "
                                f"{who.role.label}")
    return None


def guard(needed: Role) -> Callable[[Handler], Handler]:
    """Only people with `needed` (or more) reach the handler; others are sent to log in (no
    session) or refused (403). Works for sync handlers (Starlette runs them in a thread) and
    async ones (the forms)."""

    def wrap(handler: Handler) -> Handler:
        if inspect.iscoroutinefunction(handler):
            @wraps(handler)
            async def async_guarded(request: Request) -> Response:
                return _check(request, needed) or await handler(request)
            return async_guarded

        @wraps(handler)
        def guarded(request: Request) -> Response:
            return _check(request, needed) or handler(request)
        return guarded

    return wrap


def local(request: Request, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(deps(request).tz).strftime(fmt) if value is not None else "-"
