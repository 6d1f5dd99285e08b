"""Read-only views for Forus support: `requests list|show`, `messages list|show`,
`replies list`, `stats`.

Output rules:
* Lists mask addresses (`j***@utrecht.nl`): they end up in screenshots and tickets. `show`
  prints them in full, because support staff need them to call the municipality back; pass
  `--mask` when sharing a screen. The JSON shapes are in `service/shapes.py` (docs/cli-views.md).
* Times are shown in the `[sla] timezone` (Europe/Amsterdam) in tables; `--json` always uses
  ISO 8601 UTC. A deadline is shown as the promised working day ("Wed 9 Dec, end of working
  day"): the stored deadline is the midnight that ends it (`domain/deadline_text.py`).
* `--since DATE` takes `YYYY-MM-DD` (start of that day, UTC) or an ISO date-time.
* These commands never write, not even a schema upgrade (see `context.CliContext`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reset_mailbot.cli.context import (
    CliContext,
    choice,
    echo_json,
    not_found,
    parse_since,
)
from reset_mailbot.cli.options import (
    ConfigOption,
    JsonOption,
    LimitOption,
    MaskOption,
    SinceOption,
)
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.domain.request_state import RequestState

if TYPE_CHECKING:
    from rich.console import Console

    from reset_mailbot.domain.message_text import ReadableText


def _console() -> Console:
    """Tables only; cells with data from mail are `escape`d (a From header like `[/x]` would
    otherwise be read as markup)."""
    from rich.console import Console

    # Piped output (tests, `| less`, tickets) gets wide lines instead of wrapped cells.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


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


def requests_list(
    config: ConfigOption = None,
    state: Annotated[str | None, typer.Option(
        "--state", help="Only this state: " + ", ".join(s.value for s in RequestState))] = None,
    municipality: Annotated[
        str | None, typer.Option("--municipality",
                                 help="Only this municipality (its name, any case)")
    ] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open requests past their deadline")
    ] = False,
    since: SinceOption = None,
    limit: LimitOption = 200,
    as_json: JsonOption = False,
) -> None:
    """Requests, newest first: who asked, for which account, in which state, how late."""
    from rich.markup import escape
    from rich.table import Table

    from reset_mailbot.adapters.db import queries
    from reset_mailbot.service.shapes import request_row

    choice(state, [s.value for s in RequestState], "--state")
    since_at = parse_since(since)
    with CliContext(config, for_people=True) as ctx:
        with ctx.store.unit_of_work() as uow:
            rows = queries.list_requests(
                uow, state=state, municipality=municipality, since=since_at,
                overdue_at=ctx.now if overdue else None, limit=limit,
            )
            data = [request_row(r, ctx.now, ctx.zone) for r in rows]
        if as_json:
            echo_json({"count": len(data), "requests": data})
            return
        if not data:
            typer.echo("no requests")
            return
        table = Table(box=None, header_style="bold")
        for column in ("id", "received", "municipality", "sender", "account", "state", "deadline",
                       "age"):
            table.add_column(column, no_wrap=True)
        for row, request in zip(data, rows, strict=True):
            table.add_row(
                row["id"], ctx.local(request.created_at), escape(row["municipality"] or "-"),
                escape(row["sender"] or "-"), escape(row["account_email"] or "-"), row["state"],
                _deadline_cell(row), _age(ctx.now - request.created_at),
            )
        _console().print(table)


_STATUS_STYLE = {"overdue": "[red]{} (overdue)[/red]", "due_today": "[yellow]{} (today)[/yellow]"}


def _deadline_cell(row: dict[str, Any]) -> str:
    """The promised day, marked when it is today or past (rich markup)."""
    label = row["deadline_label"] or "-"
    return _STATUS_STYLE.get(row["sla_status"], "{}").format(label)


def _deadline_text(r: dict[str, Any]) -> str:
    """The promised day and where the request stands, for `requests show`."""
    if r["deadline_label"] is None:
        return "none yet (not complete)" if r["sla_status"] == "none" else "-"
    status = {"on_time": "on time", "due_today": "due today", "overdue": "OVERDUE",
              "closed": "closed"}[r["sla_status"]]
    return f"{r['deadline_label']} ({status})"


def requests_show(
    request_id: Annotated[str, typer.Argument(help="Request id, e.g. R-ABCD2345")],
    config: ConfigOption = None,
    mask: MaskOption = False,
    as_json: JsonOption = False,
) -> None:
    """The whole story of one request: messages and decisions, audit, replies, executions."""
    from reset_mailbot.adapters.db import queries
    from reset_mailbot.service.shapes import (
        audit_detail,
        execution_detail,
        message_detail,
        reply_detail,
        request_detail,
    )

    with CliContext(config, for_people=True) as ctx:
        with ctx.store.unit_of_work() as uow:
            request = queries.request_story(uow, request_id.strip().upper())
            if request is None:
                raise not_found(f"no request {request_id}")
            data = {
                "request": request_detail(request, ctx.now, mask, ctx.zone),
                "messages": [message_detail(m, mask) for m in request.messages],
                "audit": [audit_detail(a, mask) for a in request.audit],
                "replies": [reply_detail(o, mask) for o in request.outbox],
                "executions": [execution_detail(e) for e in request.executions],
            }
        if as_json:
            echo_json(data)
            return
        _print_request(data, ctx)


def _print_request(data: dict[str, Any], ctx: CliContext) -> None:
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
    lines.append(f"  deadline:          {_deadline_text(r)}")
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
    # a "thanks" after the request closed is on the audit trail, not among its messages
    followups = [a for a in data["audit"] if a["event"] == "followup_received"
                 and a["message_id"] is not None]
    if followups:
        lines.append(f"  follow-ups after it closed ({len(followups)}):")
        lines.extend(f"  message {a['message_id']} received {when(a['at'])}" for a in followups)
    if data["messages"] or followups:
        lines.append("  (what a message says: reset-mailbot messages show ID --body)")
    lines.append("")
    lines.append(f"replies ({len(data['replies'])}):")
    for o in data["replies"]:
        sent = (f"sent {when(o['sent_at'])}" if o["sent_at"]
                else f"next {when(o['next_attempt_at'])}")
        by = f" by {o['instance']}" if o["instance"] else ""
        lines.append(f"  #{o['id']} {o['kind']} to {o['to']}: {o['state']}, "
                     f"{o['attempts']} attempt(s), {sent}{by}")
        if o["last_error"]:
            lines.append(f"      last error: {o['last_error']}")
    lines.append("")
    lines.append(f"executions ({len(data['executions'])}):")
    for e in data["executions"]:
        by = f" by {e['instance']}" if e["instance"] else ""
        lines.append(f"  #{e['id']} {e['state']}, {e['attempts']} attempt(s), "
                     f"result {e['result_code'] or '-'}, finished {when(e['finished_at'])}{by}")
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


def messages_list(
    config: ConfigOption = None,
    outcome: Annotated[str | None, typer.Option(
        "--outcome", help="Only this outcome: " + ", ".join(o.value for o in Outcome))] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only messages that broke processing")
    ] = False,
    since: SinceOption = None,
    limit: LimitOption = 200,
    as_json: JsonOption = False,
) -> None:
    """Decided messages, newest first, with outcome, reasons and where they were filed."""
    from rich.markup import escape
    from rich.table import Table

    from reset_mailbot.adapters.db import queries
    from reset_mailbot.service.shapes import message_row

    choice(outcome, [o.value for o in Outcome], "--outcome")
    since_at = parse_since(since)
    with CliContext(config, for_people=True) as ctx:
        with ctx.store.unit_of_work() as uow:
            rows = queries.list_messages(uow, outcome=outcome, errors_only=errors,
                                         since=since_at,
                                     limit=limit)
            data = [message_row(m) for m in rows]
        if as_json:
            echo_json({"count": len(data), "messages": data})
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


def messages_show(
    message_id: Annotated[int, typer.Argument(help="Message id (first column of the list)")],
    config: ConfigOption = None,
    mask: MaskOption = False,
    body: Annotated[bool, typer.Option(
        "--body", help="Also print what the sender wrote, with the quoted history folded "
                       "away (from the stored raw message)")] = False,
    as_json: JsonOption = False,
) -> None:
    """One message: its decision, evidence, error, folder and audit events (--body: its
    text)."""
    from reset_mailbot.service.shapes import audit_detail, body_detail, message_detail, why_filed

    with CliContext(config, for_people=True) as ctx:
        with ctx.store.unit_of_work() as uow:
            message = uow.messages.get(message_id)
            if message is None:
                raise not_found(f"no message {message_id}")
            detail = message_detail(message, mask)
            detail["why"] = why_filed(detail)
            data = {
                "message": detail,
                "audit": [audit_detail(a, mask)
                          for a in uow.audit_log.entries(message_id=message_id)],
            }
            raw_bytes = message.raw if body else None
        if body:
            text = _readable(ctx, raw_bytes) if raw_bytes is not None else None
            data["body"] = body_detail(text, mask) if text is not None else None
        if as_json:
            echo_json(data)
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
        if body:
            lines.append("")
            lines.extend(_body_lines(data["body"], raw))
        lines.append("")
        lines.append(f"audit ({len(data['audit'])}):")
        lines.extend(_audit_line(a, when) for a in data["audit"])
        typer.echo("\n".join(lines))


def _readable(ctx: CliContext, raw: bytes) -> ReadableText:
    """The message's text, its quote found by the configured extraction rules."""
    from reset_mailbot import bootstrap
    from reset_mailbot.domain.message_text import readable_text

    return readable_text(raw, bootstrap.build_rules(ctx.config).extraction)


def _body_lines(b: dict[str, Any] | None, raw_state: str) -> list[str]:
    if b is None:
        return [f"body: not available, the raw message is {raw_state}"]
    lines = ["body (what the sender wrote):"]
    lines += [f"  | {line}".rstrip() for line in (b["new_text"] or "(no text)").splitlines()]
    if b["quoted_lines"]:
        lines.append(f"  [... {b['quoted_lines']} quoted lines hidden]")
    if b["truncated"]:
        lines.append("  [... cut: the message is longer than shown]")
    return lines


def replies_list(
    config: ConfigOption = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only replies whose delivery failed for good")
    ] = False,
    request_id: Annotated[
        str | None, typer.Option("--request", help="Only the replies of this request")
    ] = None,
    limit: LimitOption = 200,
    as_json: JsonOption = False,
) -> None:
    """The outbox, newest first: every reply with its state, attempts and last error."""
    from rich.markup import escape
    from rich.table import Table

    from reset_mailbot.adapters.db.outbox import OutboxState
    from reset_mailbot.service.shapes import reply_row

    with CliContext(config, for_people=True) as ctx:
        with ctx.store.unit_of_work() as uow:
            rows = uow.outbox.listing(
                state=OutboxState.FAILED if failed else None,
                request_id=request_id.strip().upper() if request_id else None, limit=limit,
            )
            data = [reply_row(o) for o in rows]
        if as_json:
            echo_json({"count": len(data), "replies": data})
            return
        if not data:
            typer.echo("no replies")
            return
        table = Table(box=None, header_style="bold")
        for column in ("id", "created", "request", "kind", "to", "subject", "state", "attempts",
                       "next attempt", "last error"):
            table.add_column(column, no_wrap=column != "last error")
        for row, item in zip(data, rows, strict=True):
            state = f"[red]{row['state']}[/red]" if row["state"] == "failed" else row["state"]
            table.add_row(
                str(row["id"]), ctx.local(item.created_at), row["request_id"] or "-",
                row["kind"], escape(row["to"] or "-"), escape(_short(row["subject"], 60)),
                state, str(row["attempts"]), ctx.local(item.next_attempt_at),
                escape(_short(row["last_error"] or "-", 80)),
            )
        _console().print(table)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def stats(
    config: ConfigOption = None,
    since: SinceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Counts by outcome, reason code, state and municipality; median time to reset."""
    from reset_mailbot.adapters.db import queries

    since_at = parse_since(since)
    with CliContext(config, for_people=True) as ctx:
        with ctx.store.unit_of_work() as uow:
            data = queries.stats(uow, since_at)
        if as_json:
            echo_json(data)
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

