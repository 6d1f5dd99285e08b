"""Command line entry point (typer). Commands only parse arguments, call bootstrap and print.

Operator errors (configuration, rules, unreadable files) end with one line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from reset_mailbot import bootstrap
from reset_mailbot.adapters.db.engine import DatabaseError
from reset_mailbot.adapters.db.migrate import SchemaOutdated
from reset_mailbot.cli_groups import ConfigOption, messages_app, requests_app
from reset_mailbot.config import Config, ConfigError, LogSettings, load_config
from reset_mailbot.domain.context import as_duplicate, decide_in_context
from reset_mailbot.domain.decision import decide
from reset_mailbot.domain.models import Decision
from reset_mailbot.logs import configure_logging
from reset_mailbot.rules_loader import RulesError

app = typer.Typer(
    name="reset-mailbot",
    help="Turns e-mail from municipal staff into safe 2FA resets on the Forus platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Inspect and validate the rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(requests_app, name="requests")
app.add_typer(messages_app, name="messages")


F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"reset-mailbot: error: {message}", err=True)
    raise typer.Exit(code)


def operator_errors(func: F) -> F:
    """Turn configuration and rule problems into one line and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigError, RulesError, SchemaOutdated) as exc:
            fail(str(exc))
        except DatabaseError as exc:  # check --db on a file that is no reset-mailbot database
            fail(f"database: {str(exc.orig or exc).strip().splitlines()[0]}")

    return wrapper  # type: ignore[return-value]


def _load(config_path: Path | None) -> Config:
    config = load_config(config_path)
    configure_logging(config.get(LogSettings).level)
    return config


def describe(decision: Decision, name: str) -> str:
    """A short human explanation of one decision."""
    lines = [f"{name}: {decision.outcome.value}"]
    if decision.reasons:
        lines.append("  reasons: " + ", ".join(r.value for r in decision.reasons))
    if decision.sender.address:
        who = decision.sender.address
        if decision.sender.municipality:
            who += f" ({decision.sender.municipality})"
        lines.append(f"  sender: {who}")
    auth = decision.authentication
    if decision.outcome.value not in {"ignored"} and decision.sender.address:
        signed = f"DKIM {auth.dkim.value}"
        if auth.signing_domain:
            signed += f" d={auth.signing_domain}" + (" aligned" if auth.aligned else " not aligned")
        lines.append(f"  authentication: {signed}")
    if decision.outcome.value in {"complete", "incomplete"}:
        req = decision.request
        lines.append(f"  account: {req.account_email or '-'}")
        lines.append(f"  identity verified: {'yes' if req.identity_verified else 'no'}")
        lines.append(f"  reset instructed: {'yes' if req.reset_instructed else 'no'}")
        lines.append(f"  case reference: {req.case_reference or '-'}")
        if decision.missing:
            lines.append("  missing: " + ", ".join(m.value for m in decision.missing))
        for evidence in req.evidence:
            rule = f" [{evidence.rule}]" if evidence.rule else ""
            lines.append(f"  evidence {evidence.item.value}{rule}: {evidence.text!r}")
    if decision.detail:
        lines.append(f"  detail: {decision.detail}")
    lines.append(f"  reply: {'yes' if decision.reply else 'no'}")
    return "\n".join(lines)


def _read_bounded(name: str, limit: int) -> bytes:
    """At most limit + 1 bytes: enough for the decision to say `oversize`, never more."""
    if name == "-":
        return sys.stdin.buffer.read(limit + 1)
    with Path(name).open("rb") as handle:
        return handle.read(limit + 1)


def _parse_at(value: str | None) -> float:
    """`--at` as seconds since the epoch; now when not given (the core reads no clock)."""
    if value is None:
        return time.time()
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    if when.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no time zone (e.g. 2026-11-26T12:00+01:00)")
    return when.timestamp()


@app.command()
@operator_errors
def check(
    files: Annotated[list[str], typer.Argument(help="Message files (.eml); - reads stdin")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message")] = False,
    at: Annotated[str | None, typer.Option(
        "--at", help="Decide as of this time (ISO 8601 with zone), e.g. for a saved old message;"
        " default: now")] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="Explain in the light of this database (a SQLite file or a database URL),"
        " opened read-only: what the daemon did or would do (duplicate, follow-up on a closed"
        " request)")] = None,
) -> None:
    """Decide messages without side effects: no mail, no reset, no database write.

    Messages given together are checked as one mailbox would see them: a second message with a
    Message-ID or DKIM signature seen before in the same call is `ignored [duplicate]`. With
    --db, what the daemon recorded counts too (domain/context.py, the daemon's own rules).
    """
    cfg = _load(config)
    context = bootstrap.build_decision_context(cfg)
    now = _parse_at(at)
    store = bootstrap.build_read_only_store(db) if db is not None else None
    seen: dict[str, str] = {}
    status = 0
    for name in files:
        try:
            raw = _read_bounded(name, context.limits.max_message_bytes)
        except OSError as exc:
            typer.echo(f"reset-mailbot: error: {name}: {exc.strerror or exc}", err=True)
            status = 2
            continue
        decision = decide(raw, context, now)
        keys = [decision.message_key, *decision.replay_keys]
        earlier = next((seen[key] for key in keys if key in seen), None)
        if earlier is not None:
            decision = as_duplicate(decision, earlier)
        else:
            seen.update((key, name) for key in keys)
            if store is not None:
                with store.unit_of_work() as uow:
                    facts = uow.facts_for(decision)
                decision = decide_in_context(
                    decision, facts, hashlib.sha256(raw).hexdigest()).decision
        bootstrap.log_decision(decision, file=name)
        if as_json:
            typer.echo(json.dumps(decision.check_json(), ensure_ascii=False))
        else:
            typer.echo(describe(decision, name))
    raise typer.Exit(status)


@rules_app.command("check")
@operator_errors
def rules_check(config: ConfigOption = None) -> None:
    """Validate every rule file and print a summary."""
    cfg = _load(config)
    rules = bootstrap.build_rules(cfg)
    munis = rules.municipalities.municipalities
    domains = sum(len(m.domains) for m in munis)
    contacts = sum(len(m.contacts) for m in munis)
    typer.echo(f"municipalities: {len(munis)} ({domains} domains, {contacts} registered contacts)")
    groups = rules.group_mailboxes
    typer.echo(
        f"group mailboxes: {len(groups.exact)} exact, {len(groups.prefixes)} prefixes, "
        f"{len(groups.tokens)} tokens"
    )
    typer.echo(f"automatic mail: {len(rules.automatic.headers)} header rules")
    for line in rules.extraction.summary() if hasattr(rules.extraction, "summary") else []:
        typer.echo(line)
    for line in rules.templates.summary():
        typer.echo(line)
    for source in rules.sources:
        typer.echo(f"ok: {source}")


@app.command()
@operator_errors
def run(
    config: ConfigOption = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Process the inbox, drive due work, then exit"),
    ] = False,
) -> None:
    """Run the daemon: poll the support mailbox, decide, execute, reply."""
    from reset_mailbot.adapters.imap import MailboxError

    cfg = _load(config)
    daemon = bootstrap.build_daemon(cfg)
    if not once:
        daemon.run_forever()
        return
    try:
        report = daemon.run_once()
    except MailboxError as exc:
        fail(f"mailbox: {exc}", code=1)
    typer.echo(
        f"messages seen {report.poll.seen}, decided {report.poll.decided}, "
        f"moved {report.poll.moved}, errors {report.poll.errors}; "
        f"executions run {report.executions}; replies attempted {report.replies}"
    )
    if report.sla is not None:  # None: the check failed and was logged (job_failed)
        typer.echo(
            f"deadlines: {report.sla.checked} open request(s) near or past their deadline; "
            f"newly warned {len(report.sla.warned)}, newly breached {len(report.sla.breached)}"
        )


@db_app.command("upgrade")
@operator_errors
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema to this version."""
    from reset_mailbot.adapters.db.migrate import current_revision, head_revision, upgrade

    cfg = _load(config)
    store = bootstrap.build_store(cfg)
    before = current_revision(store.engine)
    upgrade(store.engine)
    typer.echo(f"database schema: {before or '(empty)'} -> {head_revision()}")


@app.command()
@operator_errors
def demo(
    check_only: Annotated[
        bool,
        typer.Option("--check-only", help="Only decide the shipped samples (no services)"),
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the state dir and logs")] = False,
    executor: Annotated[
        str,
        typer.Option("--executor", help="[executor] kind for the demo: http, manual, forus-db"),
    ] = "http",
) -> None:
    """The whole loop against throwaway Dovecot, SMTP, DNS and executor (needs the dev extras)."""
    configure_logging("warning")
    if check_only:
        from reset_mailbot.demo import run_demo

        run_demo()
        return
    from reset_mailbot.demo_loop import DemoUnavailable, run_loop_demo

    try:
        if executor not in {"http", "manual", "forus-db"}:
            fail(f"--executor must be http, manual or forus-db, not {executor!r}")
        run_loop_demo(keep=keep, executor=executor)
    except DemoUnavailable as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; every service the demo started was stopped", code=130)


def _register_command_modules() -> None:
    """Import the modules that add commands to the groups (kept apart: one concern each)."""
    import importlib

    for name in ("cli_actions", "cli_views", "cli_ops"):
        module = importlib.import_module(f"reset_mailbot.{name}")
        # A module's own top-level commands (e.g. `stats`, `purge`) live on its `top_level`.
        top_level = getattr(module, "top_level", None)
        if top_level is not None:
            app.registered_commands.extend(top_level.registered_commands)


_register_command_modules()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
