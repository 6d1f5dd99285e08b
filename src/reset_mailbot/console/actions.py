"""The console's actions: approve, deny, manual reset done / failed, re-send a reply,
reprocess a message.

Each action is a GET that shows a confirmation form (nothing changes) and a POST that does it:
the POST is checked for its CSRF token and Origin before anything else, then calls the same
service function as the CLI with the logged-in person as the actor, so the audit log names
them and the service's rules (four eyes, states, a mandatory reason) hold here as there.
The outcome is shown once on the page the person returns to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from reset_mailbot.console.roles import Role
from reset_mailbot.console.security import CSRF_FIELD, csrf_ok, origin_ok
from reset_mailbot.console.web import deps, guard, person, refused, render
from reset_mailbot.service.actions import (
    ActionOutcome,
    ActionRefused,
    approve,
    deny,
    mark_done,
    mark_failed,
)

FLASH = "flash"
MAX_TEXT = 2000  # a reason or note: a sentence or a paragraph, not a document


@dataclass(frozen=True)
class RequestAction:
    title: str
    role: Role
    reason: str | None  # the field's label when the action takes one
    reason_required: bool
    button: str


REQUEST_ACTIONS = {
    "approve": RequestAction("Approve the reset", Role.APPROVER, None, False, "Approve"),
    "deny": RequestAction("Deny the reset", Role.APPROVER,
                          "Reason (the municipality receives it)", True, "Deny"),
    "done": RequestAction("Record that the 2FA was reset by hand", Role.OPERATOR,
                          "Note (optional)", False, "Mark done"),
    "failed": RequestAction("Record that the reset could not be done", Role.OPERATOR,
                            "Reason (the municipality receives it)", True, "Mark failed"),
}


def flash(request: Request, text: str, ok: bool = True) -> None:
    request.session[FLASH] = {"text": text[:500], "ok": ok}


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return " ".join(str(value).split())[:MAX_TEXT] if isinstance(value, str) else ""


FormHandler = Callable[[Request, FormData], Awaitable[Response]]


def form_action(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
    """Reads the form and refuses it (403) unless its CSRF token and Origin are right."""

    @wraps(handler)
    async def checked(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=20)
        if not csrf_ok(request.session, form.get(CSRF_FIELD)) or not origin_ok(
                request.headers.get("origin"), deps(request).settings.base_url):
            return refused(request, "the form expired or did not come from this console "
                                    "(CSRF check); reload the page and try again")
        return await handler(request, form)

    return checked


def _back(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def _request_action(name: str) -> RequestAction | None:
    return REQUEST_ACTIONS.get(name)


@guard(Role.VIEWER)
def confirm_request_action(request: Request) -> Response:
    action = _request_action(request.path_params["action"])
    if action is None:
        return refused(request, "no such action", status_code=404)
    if not person(request).may(action.role):
        return refused(request, f"this needs the {action.role.label} role")
    return render(request, "confirm.html", action=action,
                  target=f"request {request.path_params['request_id']}",
                  back=f"/requests/{request.path_params['request_id']}")


def _run_request_action(request: Request, name: str, reason: str) -> ActionOutcome:
    d = deps(request)
    who = person(request).identity
    request_id = request.path_params["request_id"]
    common = {"support_address": d.support_address, "templates": d.templates,
              "clock": d.clock}
    if name == "approve":
        executor = d.executor()
        try:
            return approve(d.store, request_id, by=who, executor=executor,
                           max_attempts=d.max_attempts, **common)
        finally:
            close = getattr(executor, "close", None)
            if callable(close):
                close()
    if name == "deny":
        return deny(d.store, request_id, by=who, reason=reason, **common)
    if name == "done":
        return mark_done(d.store, request_id, by=who, note=reason or None, **common)
    return mark_failed(d.store, request_id, by=who, reason=reason, **common)


@guard(Role.VIEWER)
@form_action
async def do_request_action(request: Request, form: FormData) -> Response:
    name = request.path_params["action"]
    action = _request_action(name)
    if action is None:
        return refused(request, "no such action", status_code=404)
    if not person(request).may(action.role):
        return refused(request, f"this needs the {action.role.label} role")
    back = f"/requests/{request.path_params['request_id']}"
    reason = _text(form, "reason")
    if action.reason_required and not reason:
        return render(request, "confirm.html", status_code=400, action=action,
                      target=f"request {request.path_params['request_id']}", back=back,
                      error="a reason is required: the municipality receives it")
    try:
        outcome = await run_in_threadpool(_run_request_action, request, name, reason)
    except ActionRefused as exc:
        flash(request, f"refused: {exc}", ok=False)
        return _back(back)
    flash(request, outcome.summary)
    return _back(back)


RESEND = RequestAction("Send this reply again", Role.OPERATOR, None, False, "Re-send")
REPROCESS = RequestAction("Decide this message again with the current rules", Role.OPERATOR,
                          None, False, "Reprocess")


@guard(Role.OPERATOR)
def confirm_resend(request: Request) -> Response:
    reply_id = request.path_params["reply_id"]
    return render(request, "confirm.html", action=RESEND, target=f"reply {reply_id}",
                  back=request.query_params.get("back") or "/replies?failed=1")


@guard(Role.OPERATOR)
@form_action
async def do_resend(request: Request, form: FormData) -> Response:
    from reset_mailbot.service.reply_actions import resend_reply

    d = deps(request)
    reply_id = request.path_params["reply_id"]
    back = _safe_back(_text(form, "back"), "/replies?failed=1")
    try:
        outcome = await run_in_threadpool(
            lambda: resend_reply(d.store, reply_id, by=person(request).identity,
                                 clock=d.clock))
    except ActionRefused as exc:
        flash(request, f"refused: {exc}", ok=False)
        return _back(back)
    flash(request, outcome.summary)
    return _back(back)


@guard(Role.OPERATOR)
def confirm_reprocess(request: Request) -> Response:
    message_id = request.path_params["message_id"]
    return render(request, "confirm.html", action=REPROCESS, target=f"message {message_id}",
                  back=f"/messages/{message_id}")


@guard(Role.OPERATOR)
@form_action
async def do_reprocess(request: Request, form: FormData) -> Response:
    from reset_mailbot.service.reprocess import (
        MessageNotFound,
        ReprocessRefused,
        reprocess_message,
    )

    d = deps(request)
    message_id = request.path_params["message_id"]
    back = f"/messages/{message_id}"

    def run() -> str:
        result = reprocess_message(d.store, d.processor(), message_id,
                                   actor=person(request).identity)
        before = result.previous_outcome or "failed"
        line = f"message {result.message_id}: {before} -> {result.outcome}"
        if result.request_id:
            line += f"; request {result.request_id}: {result.request_state}"
        return line

    try:
        summary = await run_in_threadpool(run)
    except (MessageNotFound, ReprocessRefused) as exc:
        flash(request, f"refused: {exc}", ok=False)
        return _back(back)
    flash(request, summary)
    return _back(back)


def _safe_back(path: str, default: str) -> str:
    """Only a path on this console (no scheme, no host, no `//`): never an open redirect."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return default
