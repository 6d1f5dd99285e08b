"""Read-only views for Forus support, plus `messages reprocess` and `purge` (issue #6, 1 and 5).

Commands: `requests list|show`, `messages list|show|reprocess` (on the shared groups of
`cli_groups`) and the top-level `stats` and `purge` (on `top_level`, which `cli.py` merges into
the main app). The JSON shapes are documented in docs/cli-views.md.

Output rules:
* Lists mask addresses (`j***@utrecht.nl`): they end up in screenshots and tickets. `show`
  prints them in full, because support staff need them to call the municipality back; pass
  `--mask` when sharing a screen.
* Times are shown in the `[sla] timezone` (Europe/Amsterdam) in tables; `--json` always uses
  ISO 8601 UTC. `--json` objects are stable: keys are only ever added, never renamed.
* `--since DATE` takes `YYYY-MM-DD` (start of that day, UTC) or an ISO date-time.
* Exit codes: 0 done; 1 the thing asked for does not exist or may not be done (unknown id,
  refused reprocess); 2 an operator mistake (bad option value, configuration, database).

The helpers below repeat three small ones of `cli.py` on purpose: `cli.py` imports this module
while it is being imported (and runs as `__main__` under `python -m`), so importing back from it
would load it twice.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reset_mailbot import bootstrap
from reset_mailbot.adapters.db.engine import DatabaseError
from reset_mailbot.adapters.db.migrate import SchemaOutdated, ensure_schema
from reset_mailbot.cli_groups import ConfigOption, messages_app, requests_app
from reset_mailbot.config import (
    Config,
    ConfigError,
    LogSettings,
    RetentionSettings,
    SlaSettings,
    load_config,
)
from reset_mailbot.domain.addresses import mask_address
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.domain.request_state import FINAL_STATES, RequestState
from reset_mailbot.logs import configure_logging, mask_text
from reset_mailbot.rules_loader import RulesError

if TYPE_CHECKING:
    from reset_mailbot.adapters.db.schema import (
        AuditEntry,
        Execution,
        Message,
        OutboxItem,
        Request,
    )
    from reset_mailbot.adapters.db.unit_of_work import Store

#: Top-level commands of this module (`stats`, `purge`); cli.py adds them to the main app.
top_level = typer.Typer()

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON (stable keys)")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only from this date on: YYYY-MM-DD (UTC) or ISO date-time"),
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="At most this many rows")]

F = TypeVar("F", bound=Callable[..., Any])


class _Failure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"reset-mailbot: error: {message}", err=True)
    raise typer.Exit(code)


def _not_found(message: str) -> _Failure:
    return _Failure(message, 1)


def _operator_errors(func: F) -> F:
    """Configuration, schema and database problems: one line, exit 2; `_Failure`: its code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _Failure as exc:
            _fail(str(exc), exc.code)
        except (ConfigError, RulesError, SchemaOutdated) as exc:
            _fail(str(exc))
        except DatabaseError as exc:
            _fail(f"database: {str(exc.orig or exc).strip().splitlines()[0]}")

    return wrapper  # type: ignore[return-value]


class _Ctx:
    """What every view needs: the loaded configuration, the store and the display zone."""

    def __init__(self, config_path: Path | None) -> None:
        self.config: Config = load_config(config_path)
        configure_logging(self.config.get(LogSettings).level)
        self.store: Store = bootstrap.build_store(self.config)
        ensure_schema(self.store.engine, auto_upgrade=False)
        self.zone = ZoneInfo(self.config.get(SlaSettings).timezone)
        self.now = datetime.now(UTC)

    def local(self, value: datetime | None) -> str:
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M") if value else "-"


def _console() -> Console:
    """Tables only; cells with data from mail are `escape`d (a From header like `[/x]` would
    otherwise be read as markup)."""
    # Piped output (tests, `| less`, tickets) gets wide lines instead of wrapped cells.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def parse_since(value: str | None) -> datetime | None:
    """`YYYY-MM-DD` is the start of that day in UTC; a naive date-time is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Failure(f"--since {value!r}: use YYYY-MM-DD or an ISO date-time", 2) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _age(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def _is_overdue(request: Request, now: datetime) -> bool:
    return (request.deadline_at is not None and request.deadline_at < now
            and RequestState(request.state) not in FINAL_STATES)


def _masked(value: str | None, mask: bool) -> str | None:
    return mask_address(value) if mask else value


def _masked_text(value: str | None, mask: bool) -> str | None:
    return mask_text(value) if mask and value else value


def _choice(value: str | None, allowed: Iterable[str], option: str) -> str | None:
    allowed = sorted(allowed)
    if value is not None and value not in allowed:
        raise _Failure(f"{option} {value!r}: one of {', '.join(allowed)}", 2)
    return value


# ------------------------------------------------------------------------------- requests


def request_row(request: Request, now: datetime) -> dict[str, Any]:
    """One request in `requests list --json` (addresses masked)."""
    return {
        "id": request.id,
        "state": request.state,
        "municipality": request.municipality,
        "sender": mask_address(request.sender),
        "account_email": mask_address(request.account_email),
        "created_at": _iso(request.created_at),
        "deadline_at": _iso(request.deadline_at),
        "overdue": _is_overdue(request, now),
        "executed_at": _iso(request.executed_at),
        "closed_at": _iso(request.closed_at),
        "age_seconds": int((now - request.created_at).total_seconds()),
    }


@requests_app.command("list")
@_operator_errors
def requests_list(
    config: ConfigOption = None,
    state: Annotated[str | None, typer.Option("--state", help="Only this state")] = None,
    municipality: Annotated[
        str | None, typer.Option("--municipality", help="Only this municipality (its name)")
    ] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open requests past their deadline")
    ] = False,
    since: SinceOption = None,
    limit: LimitOption = 200,
    as_json: JsonOption = False,
) -> None:
    """Requests, newest first: who asked, for which account, in which state, how late."""
    _choice(state, [s.value for s in RequestState], "--state")
    since_at = parse_since(since)
    ctx = _Ctx(config)
    with ctx.store.unit_of_work() as uow:
        rows = uow.requests.search(
            state=state, municipality=municipality, since=since_at,
            overdue_at=ctx.now if overdue else None, limit=limit,
        )
        data = [request_row(r, ctx.now) for r in rows]
    if as_json:
        _echo_json({"count": len(data), "requests": data})
        return
    if not data:
        typer.echo("no requests")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "received", "municipality", "sender", "account", "state", "deadline",
                   "age"):
        table.add_column(column, no_wrap=True)
    for row, request in zip(data, rows, strict=True):
        deadline = ctx.local(request.deadline_at)
        table.add_row(
            row["id"], ctx.local(request.created_at), escape(row["municipality"] or "-"),
            escape(row["sender"] or "-"), escape(row["account_email"] or "-"), row["state"],
            f"[red]{deadline} overdue[/red]" if row["overdue"] else deadline,
            _age(ctx.now - request.created_at),
        )
    _console().print(table)


def _evidence(decision: dict[str, Any] | None) -> list[dict[str, Any]]:
    request = (decision or {}).get("request") or {}
    return [e for e in request.get("evidence") or [] if isinstance(e, dict)]


def message_detail(message: Message, mask: bool) -> dict[str, Any]:
    """A message as in `messages show --json` and inside `requests show --json`."""
    decision = message.decision or {}
    auth = decision.get("authentication") or {}
    return {
        "id": message.id,
        "message_id": message.message_id,
        "message_key": message.message_key,
        "received_at": _iso(message.received_at),
        "decided_at": _iso(message.decided_at),
        "attempts": message.attempts,
        "sender": _masked(message.sender, mask),
        "subject": message.subject,
        "outcome": message.outcome,
        "reasons": list(message.reasons or []),
        "missing": list(decision.get("missing") or []),
        "reply": bool(decision.get("reply")),
        "dkim": auth.get("dkim"),
        "signing_domain": auth.get("signing_domain"),
        "evidence": [
            {"item": e.get("item"), "kind": e.get("kind"),
             "text": _masked_text(e.get("text"), mask)}
            for e in _evidence(decision)
        ],
        "detail": decision.get("detail") or None,
        "error": message.error,
        "request_id": message.request_id,
        "mailbox": message.mailbox,
        "uid": message.uid,
        "folder": message.folder_moved_to,
        "moved_at": _iso(message.moved_at),
        "size": message.size,
        "raw_stored": message.raw is not None,
        "raw_purged_at": _iso(message.raw_purged_at),
    }


def audit_detail(entry: AuditEntry, mask: bool) -> dict[str, Any]:
    data = entry.data or {}
    if mask:
        data = json.loads(mask_text(json.dumps(data, ensure_ascii=False)))
    return {"id": entry.id, "at": _iso(entry.at), "event": entry.event, "actor": entry.actor,
            "request_id": entry.request_id, "message_id": entry.message_id, "data": data}


def reply_detail(item: OutboxItem, mask: bool) -> dict[str, Any]:
    return {
        "id": item.id, "kind": item.kind, "state": item.state,
        "to": _masked(item.to_address, mask), "subject": item.subject,
        "attempts": item.attempts, "created_at": _iso(item.created_at),
        "sent_at": _iso(item.sent_at), "next_attempt_at": _iso(item.next_attempt_at),
        "last_error": _masked_text(item.last_error, mask),
        "reply_message_id": item.reply_message_id, "message_id": item.message_id,
    }


def execution_detail(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id, "state": execution.state, "attempts": execution.attempts,
        "idempotency_key": execution.idempotency_key, "result_code": execution.result_code,
        "detail": execution.detail, "created_at": _iso(execution.created_at),
        "finished_at": _iso(execution.finished_at),
        "next_attempt_at": _iso(execution.next_attempt_at),
    }


def request_detail(request: Request, now: datetime, mask: bool) -> dict[str, Any]:
    return {
        "id": request.id,
        "state": request.state,
        "municipality": request.municipality,
        "sender": _masked(request.sender, mask),
        "account_email": _masked(request.account_email, mask),
        "case_reference": request.case_reference,
        "identity_verified": request.identity_verified,
        "reset_instructed": request.reset_instructed,
        "missing": list(request.missing or []),
        "missing_details": dict(request.missing_details or {}),
        "evidence": [
            {"item": e.get("item"), "kind": e.get("kind"),
             "text": _masked_text(e.get("text"), mask)}
            for e in request.evidence or [] if isinstance(e, dict)
        ],
        "language": request.language,
        "created_at": _iso(request.created_at),
        "completed_at": _iso(request.completed_at),
        "deadline_at": _iso(request.deadline_at),
        "overdue": _is_overdue(request, now),
        "sla_warned_at": _iso(request.sla_warned_at),
        "sla_breached_at": _iso(request.sla_breached_at),
        "executed_at": _iso(request.executed_at),
        "closed_at": _iso(request.closed_at),
        "result_code": request.result_code,
        "result_detail": _masked_text(request.result_detail, mask),
        "approved_by": request.approved_by,
        "approved_at": _iso(request.approved_at),
        "denied_by": request.denied_by,
        "denied_at": _iso(request.denied_at),
        "anonymised_at": _iso(request.anonymised_at),
    }


@requests_app.command("show")
@_operator_errors
def requests_show(
    request_id: Annotated[str, typer.Argument(help="Request id, e.g. R-ABCD2345")],
    config: ConfigOption = None,
    mask: Annotated[bool, typer.Option("--mask", help="Mask addresses (screen sharing)")] = False,
    as_json: JsonOption = False,
) -> None:
    """The whole story of one request: messages and decisions, audit, replies, executions."""
    ctx = _Ctx(config)
    with ctx.store.unit_of_work() as uow:
        request = uow.requests.get(request_id.strip().upper(), full=True)
        if request is None:
            raise _not_found(f"no request {request_id}")
        data = {
            "request": request_detail(request, ctx.now, mask),
            "messages": [message_detail(m, mask) for m in request.messages],
            "audit": [audit_detail(a, mask) for a in request.audit],
            "replies": [reply_detail(o, mask) for o in request.outbox],
            "executions": [execution_detail(e) for e in request.executions],
        }
    if as_json:
        _echo_json(data)
        return
    _print_request(data, ctx)


def _print_request(data: dict[str, Any], ctx: _Ctx) -> None:
    r = data["request"]

    def when(value: str | None) -> str:
        return ctx.local(datetime.fromisoformat(value)) if value else "-"

    def yes(value: bool) -> str:
        return "yes" if value else "no"

    lines = [
        f"request {r['id']}: {r['state']}" + ("  (OVERDUE)" if r["overdue"] else ""),
        f"  municipality:      {r['municipality'] or '-'}",
        f"  sender:            {r['sender']}",
        f"  account:           {r['account_email'] or '-'}",
        f"  case reference:    {r['case_reference'] or '-'}",
        f"  identity verified: {yes(r['identity_verified'])}",
        f"  reset instructed:  {yes(r['reset_instructed'])}",
    ]
    if r["missing"]:
        lines.append("  missing:           " + ", ".join(r["missing"]))
    lines.append(f"  received {when(r['created_at'])}, complete {when(r['completed_at'])}, "
                 f"deadline {when(r['deadline_at'])}, executed {when(r['executed_at'])}, "
                 f"closed {when(r['closed_at'])}")
    if r["result_code"] or r["result_detail"]:
        lines.append(f"  result: {r['result_code'] or '-'} {r['result_detail'] or ''}".rstrip())
    if r["approved_by"]:
        lines.append(f"  approved by {r['approved_by']} at {when(r['approved_at'])}")
    if r["denied_by"]:
        lines.append(f"  denied by {r['denied_by']} at {when(r['denied_at'])}")
    if r["anonymised_at"]:
        lines.append(f"  anonymised (retention) at {when(r['anonymised_at'])}")
    lines.append("")
    lines.append(f"messages ({len(data['messages'])}):")
    for m in data["messages"]:
        lines.extend(_message_lines(m, when, indent="  "))
    lines.append("")
    lines.append(f"replies ({len(data['replies'])}):")
    for o in data["replies"]:
        sent = (f"sent {when(o['sent_at'])}" if o["sent_at"]
                else f"next {when(o['next_attempt_at'])}")
        lines.append(f"  #{o['id']} {o['kind']} to {o['to']}: {o['state']}, "
                     f"{o['attempts']} attempt(s), {sent}")
        if o["last_error"]:
            lines.append(f"      last error: {o['last_error']}")
    lines.append("")
    lines.append(f"executions ({len(data['executions'])}):")
    for e in data["executions"]:
        lines.append(f"  #{e['id']} {e['state']}, {e['attempts']} attempt(s), "
                     f"result {e['result_code'] or '-'}, finished {when(e['finished_at'])}")
        if e["detail"]:
            lines.append(f"      detail: {e['detail']}")
    lines.append("")
    lines.append(f"audit ({len(data['audit'])}):")
    for a in data["audit"]:
        lines.append(_audit_line(a, when))
    typer.echo("\n".join(lines))


def _audit_line(a: dict[str, Any], when: Callable[[str | None], str]) -> str:
    payload = json.dumps(a["data"], ensure_ascii=False, sort_keys=True) if a["data"] else ""
    return f"  {when(a['at'])}  {a['event']:<22} {a['actor']:<10} {payload}".rstrip()


def _message_lines(
    m: dict[str, Any], when: Callable[[str | None], str], indent: str
) -> list[str]:
    outcome = m["outcome"] or "failed"
    lines = [f"{indent}message {m['id']} received {when(m['received_at'])}: {outcome}"
             + (f" ({', '.join(m['reasons'])})" if m["reasons"] else "")]
    lines.append(f"{indent}  from {m['sender'] or '-'}, subject {m['subject']!r}, "
                 f"DKIM {m['dkim'] or '-'}" + (f" d={m['signing_domain']}"
                                              if m["signing_domain"] else ""))
    if m["missing"]:
        lines.append(f"{indent}  missing: {', '.join(m['missing'])}")
    for e in m["evidence"]:
        lines.append(f"{indent}  evidence {e['item']}: {e['text']!r}")
    if m["detail"]:
        lines.append(f"{indent}  detail: {m['detail']}")
    if m["error"]:
        lines.append(f"{indent}  error: {m['error']}")
    return lines


# ------------------------------------------------------------------------------- messages


def message_row(message: Message) -> dict[str, Any]:
    """One message in `messages list --json` (sender masked, no subject)."""
    return {
        "id": message.id,
        "received_at": _iso(message.received_at),
        "sender": mask_address(message.sender),
        "outcome": message.outcome,
        "reasons": list(message.reasons or []),
        "error": message.error is not None,
        "request_id": message.request_id,
        "folder": message.folder_moved_to,
        "attempts": message.attempts,
    }


@messages_app.command("list")
@_operator_errors
def messages_list(
    config: ConfigOption = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="Only this outcome")] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only messages that broke processing")
    ] = False,
    since: SinceOption = None,
    limit: LimitOption = 200,
    as_json: JsonOption = False,
) -> None:
    """Decided messages, newest first, with outcome, reasons and where they were filed."""
    _choice(outcome, [o.value for o in Outcome], "--outcome")
    since_at = parse_since(since)
    ctx = _Ctx(config)
    with ctx.store.unit_of_work() as uow:
        rows = uow.messages.search(outcome=outcome, errors_only=errors, since=since_at,
                                 limit=limit)
        data = [message_row(m) for m in rows]
    if as_json:
        _echo_json({"count": len(data), "messages": data})
        return
    if not data:
        typer.echo("no messages")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "received", "sender", "outcome", "reasons", "request", "folder"):
        table.add_column(column, no_wrap=True)
    for row, message in zip(data, rows, strict=True):
        table.add_row(
            str(row["id"]), ctx.local(message.received_at), escape(row["sender"] or "-"),
            row["outcome"] or "[red]error[/red]", ", ".join(row["reasons"]) or "-",
            row["request_id"] or "-", row["folder"] or "-",
        )
    _console().print(table)


def _why_filed(m: dict[str, Any]) -> str | None:
    """A sentence on why a message is where it is (quarantine especially)."""
    if m["error"] is not None and m["outcome"] is None:
        return "processing failed (see error); quarantined until `messages reprocess`"
    if m["outcome"] == Outcome.REJECTED and not m["reply"]:
        return "rejected without a reply (not authentic or not allowed); quarantined"
    if m["outcome"] == Outcome.DEFERRED:
        return "deferred (temporary failure): stays in the inbox and is decided again"
    return None


@messages_app.command("show")
@_operator_errors
def messages_show(
    message_id: Annotated[int, typer.Argument(help="Message id (first column of the list)")],
    config: ConfigOption = None,
    mask: Annotated[bool, typer.Option("--mask", help="Mask addresses (screen sharing)")] = False,
    as_json: JsonOption = False,
) -> None:
    """One message: its decision, evidence, error, folder and audit events."""
    ctx = _Ctx(config)
    with ctx.store.unit_of_work() as uow:
        message = uow.messages.get(message_id)
        if message is None:
            raise _not_found(f"no message {message_id}")
        detail = message_detail(message, mask)
        detail["why"] = _why_filed(detail)
        data = {
            "message": detail,
            "audit": [audit_detail(a, mask) for a in uow.audit_log.entries(message_id=message_id)],
        }
    if as_json:
        _echo_json(data)
        return

    def when(value: str | None) -> str:
        return ctx.local(datetime.fromisoformat(value)) if value else "-"

    m = data["message"]
    lines = _message_lines(m, when, indent="")
    lines.append(f"  message-id {m['message_id'] or '-'}, request {m['request_id'] or '-'}, "
                 f"attempts {m['attempts']}")
    lines.append(f"  folder: {m['folder'] or '(not moved)'}"
                 + (f" at {when(m['moved_at'])}" if m["moved_at"] else ""))
    if m["why"]:
        lines.append(f"  why: {m['why']}")
    raw = "stored" if m["raw_stored"] else (
        f"deleted by retention {when(m['raw_purged_at'])}" if m["raw_purged_at"]
        else "not stored")
    lines.append(f"  raw bytes: {raw}")
    lines.append("")
    lines.append(f"audit ({len(data['audit'])}):")
    lines.extend(_audit_line(a, when) for a in data["audit"])
    typer.echo("\n".join(lines))


@messages_app.command("reprocess")
@_operator_errors
def messages_reprocess(
    message_id: Annotated[int, typer.Argument(help="Message id")],
    config: ConfigOption = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who asks (audit log; default: login name)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Decide a stored message again with the current rules (after a rules fix).

    Allowed for deferred, rejected, incomplete, ignored and failed messages; refused for a
    message whose request got past incomplete. See service/reprocess.py for the full rule.
    """
    from reset_mailbot.service.inbox import InboxProcessor
    from reset_mailbot.service.reprocess import (
        MessageNotFound,
        ReprocessRefused,
        reprocess_message,
    )

    ctx = _Ctx(config)
    processor = InboxProcessor(
        ctx.store, bootstrap.build_decision_context(ctx.config),
        bootstrap.build_inbox_policy(ctx.config),
    )
    actor = by or f"cli:{getpass.getuser()}"
    try:
        result = reprocess_message(ctx.store, processor, message_id, actor=actor)
    except MessageNotFound as exc:
        raise _not_found(str(exc)) from None
    except ReprocessRefused as exc:
        raise _Failure(f"refused: {exc}", 1) from None
    if as_json:
        _echo_json(result.as_json())
        return
    before = result.previous_outcome or "failed"
    line = f"message {result.message_id}: {before} -> {result.outcome}"
    if result.reasons:
        line += f" ({', '.join(result.reasons)})"
    typer.echo(line)
    if result.request_id:
        typer.echo(f"  request {result.request_id}: {result.request_state}")
    typer.echo("  acted on (replies/executions queued for the daemon)" if result.acted
               else "  recorded only (same result as before, or nothing to act on)")


# ------------------------------------------------------------------------------ top level


def compute_stats(store: Store, since: datetime | None) -> dict[str, Any]:
    """`stats --json`: counts by outcome, reason, state and municipality; time to reset."""
    from reset_mailbot.adapters.db import queries

    with store.unit_of_work() as uow:
        return queries.stats(uow, since)


@top_level.command("stats")
@_operator_errors
def stats(
    config: ConfigOption = None,
    since: SinceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Counts by outcome, reason code, state and municipality; median time to reset."""
    since_at = parse_since(since)
    ctx = _Ctx(config)
    data = compute_stats(ctx.store, since_at)
    if as_json:
        _echo_json(data)
        return
    m, r = data["messages"], data["requests"]
    lines = [f"since {ctx.local(since_at)}" if since_at else "all time",
             f"messages: {m['total']} ({m['errors']} processing errors)"]
    lines += [f"  {k:<28} {v}" for k, v in m["by_outcome"].items()]
    lines.append("reasons:")
    lines += [f"  {k:<28} {v}" for k, v in m["by_reason"].items()] or ["  -"]
    lines.append(f"requests: {r['total']} ({r['executed']} executed)")
    lines += [f"  {k:<28} {v}" for k, v in r["by_state"].items()]
    lines.append("by municipality (requests / executed):")
    lines += [f"  {k:<28} {v['requests']} / {v['executed']}"
              for k, v in r["by_municipality"].items()] or ["  -"]
    median = r["median_seconds_to_reset"]
    lines.append("median time to reset: "
                 + (_age(timedelta(seconds=median)) if median is not None else "-"))
    typer.echo("\n".join(lines))


@top_level.command("purge")
@_operator_errors
def purge(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; change nothing")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Retention: delete old raw message bytes, anonymise old requests (see retention settings)."""
    from reset_mailbot.service.retention import purge as run_purge

    ctx = _Ctx(config)
    report = run_purge(ctx.store, ctx.config.get(RetentionSettings), ctx.now, dry_run=dry_run)
    if as_json:
        _echo_json(report.as_json())
        return
    typer.echo(
        f"{'dry run, nothing changed: ' if dry_run else ''}raw bytes deleted of "
        f"{report.raw_purged} messages received before {ctx.local(report.raw_before)}\n"
        f"anonymised (created before {ctx.local(report.anonymise_before)}): "
        f"{report.requests_anonymised} requests, {report.messages_anonymised} messages, "
        f"{report.outbox_anonymised} replies, {report.executions_anonymised} executions, "
        f"{report.audit_anonymised} audit rows\n"
        f"kept (still open): {report.requests_kept_open} requests"
    )
