"""Commands that change something: a person acts on a request, a message or the retention.

`requests approve|deny|done|failed|dry-run`, `messages reprocess`, `replies resend` and
`purge`. Only argument parsing and printing; the rules are in `service/actions.py`,
`service/reprocess.py`, `service/reply_actions.py` and `service/retention.py`. Replies these
commands cause are queued in the database and sent by the running daemon's outbox job (or the
next `run --once`), so a command never waits on SMTP and a reply is never lost if SMTP is
down. Exit codes as in `context.ExitCode`: 1 for a
refusal (unknown request, wrong state, requester approving their own request).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reset_mailbot.cli.context import (
    CliContext,
    CliError,
    ExitCode,
    echo_json,
    not_found,
)
from reset_mailbot.cli.options import By, ConfigOption, JsonOption, RequestId

if TYPE_CHECKING:
    from reset_mailbot.adapters.executors.base import Executor
    from reset_mailbot.service.actions import ActionOutcome


def _executor(ctx: CliContext) -> Executor | None:
    from reset_mailbot import bootstrap
    from reset_mailbot.config import ConfigError

    try:
        return bootstrap.build_executor(ctx.config)
    except (ConfigError, ValueError) as exc:
        raise CliError(f"[executor]: {exc}") from None


def _close(executor: object) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        close()


def _act(config: Path | None, action: Callable[[CliContext], ActionOutcome]) -> None:
    """Run one state-changing action: a refusal is one line and exit 1."""
    from reset_mailbot.service.actions import ActionRefused

    with CliContext(config, writes=True) as ctx:
        try:
            outcome = action(ctx)
        except ActionRefused as exc:
            raise CliError(str(exc), ExitCode.REFUSED) from None
    typer.echo(f"{outcome.request_id}: {outcome.summary}")


def approve(request_id: RequestId, by: By, config: ConfigOption = None) -> None:
    """Approve a request waiting for approval and run the executor now (four-eyes gate)."""
    from reset_mailbot import bootstrap
    from reset_mailbot.config import ExecutorSettings
    from reset_mailbot.service import actions

    def approve_and_run(ctx: CliContext) -> ActionOutcome:
        executor = _executor(ctx)
        try:
            return actions.approve(
                ctx.store, request_id, by=by, executor=executor,
                support_address=ctx.config.mailbox.address,
                max_attempts=ctx.config.get(ExecutorSettings).max_attempts,
                templates=bootstrap.build_templates(ctx.config),
            )
        finally:
            _close(executor)

    _act(config, approve_and_run)


def deny(
    request_id: RequestId,
    by: By,
    reason: Annotated[str, typer.Option("--reason", help="Sent to the municipality")],
    config: ConfigOption = None,
) -> None:
    """Deny a request waiting for approval; the municipality receives the reason."""
    from reset_mailbot import bootstrap
    from reset_mailbot.service import actions

    _act(config, lambda ctx: actions.deny(
        ctx.store, request_id, by=by, reason=reason, support_address=ctx.config.mailbox.address,
        templates=bootstrap.build_templates(ctx.config),
    ))


def done(
    request_id: RequestId,
    by: By,
    note: Annotated[str | None, typer.Option("--note", help="Kept in the audit log")] = None,
    config: ConfigOption = None,
) -> None:
    """Record that you reset 2FA in the Forus back office; the confirmation is queued."""
    from reset_mailbot import bootstrap
    from reset_mailbot.service import actions

    _act(config, lambda ctx: actions.mark_done(
        ctx.store, request_id, by=by, note=note, support_address=ctx.config.mailbox.address,
        templates=bootstrap.build_templates(ctx.config),
    ))


def failed(
    request_id: RequestId,
    by: By,
    reason: Annotated[str, typer.Option("--reason", help="Sent to the municipality")],
    config: ConfigOption = None,
) -> None:
    """Record that the manual reset could not be done; the municipality receives the reason."""
    from reset_mailbot import bootstrap
    from reset_mailbot.service import actions

    _act(config, lambda ctx: actions.mark_failed(
        ctx.store, request_id, by=by, reason=reason, support_address=ctx.config.mailbox.address,
        templates=bootstrap.build_templates(ctx.config),
    ))


def dry_run(request_id: RequestId, config: ConfigOption = None) -> None:
    """Ask the executor what it would do for a request, changing nothing anywhere."""
    from reset_mailbot.adapters.executors.base import ExecutionStatus
    from reset_mailbot.adapters.executors.manual import ManualExecutor
    from reset_mailbot.service import actions
    from reset_mailbot.service.actions import ActionRefused

    with CliContext(config) as ctx:
        executor = _executor(ctx) or ManualExecutor()
        try:
            state, result = actions.dry_run(ctx.store, request_id, executor)
        except ActionRefused as exc:
            raise CliError(str(exc), ExitCode.REFUSED) from None
        finally:
            _close(executor)
    typer.echo(f"{request_id.strip()} ({state}), executor {executor.name}: dry run")
    if result.status is ExecutionStatus.PENDING_HUMAN:
        typer.echo("a person must reset it:")
    else:
        typer.echo(f"would return: {result.status.value} {result.code}")
    typer.echo(result.detail)


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
    from reset_mailbot import bootstrap
    from reset_mailbot.service.inbox import InboxProcessor
    from reset_mailbot.service.reprocess import (
        MessageNotFound,
        ReprocessRefused,
        reprocess_message,
    )

    with CliContext(config, writes=True) as ctx:
        processor = InboxProcessor(
            ctx.store, bootstrap.build_decision_context(ctx.config),
            bootstrap.build_inbox_policy(ctx.config),
        )
        actor = by or f"cli:{getpass.getuser()}"
        try:
            result = reprocess_message(ctx.store, processor, message_id, actor=actor)
        except MessageNotFound as exc:
            raise not_found(str(exc)) from None
        except ReprocessRefused as exc:
            raise CliError(f"refused: {exc}", ExitCode.REFUSED) from None
        if as_json:
            echo_json(result.as_json())
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


def replies_resend(
    reply_id: Annotated[int, typer.Argument(help="Reply id (first column of `replies list`)")],
    by: By,
    config: ConfigOption = None,
) -> None:
    """Send a reply whose delivery failed for good again: the same message, byte for byte.

    It is queued for the running daemon's outbox job (or the next `run --once`); refused for a
    reply that is not failed. See service/reply_actions.py.
    """
    from reset_mailbot.service.actions import ActionRefused
    from reset_mailbot.service.reply_actions import resend_reply

    with CliContext(config, writes=True) as ctx:
        try:
            outcome = resend_reply(ctx.store, reply_id, by=by)
        except ActionRefused as exc:
            raise CliError(str(exc), ExitCode.REFUSED) from None
    prefix = f"{outcome.request_id}: " if outcome.request_id else ""
    typer.echo(f"{prefix}{outcome.summary}")


def purge(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; change nothing")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Retention: delete old raw message bytes, anonymise old requests (see retention settings)."""
    from reset_mailbot.config import RetentionSettings
    from reset_mailbot.service.retention import purge as run_purge

    with CliContext(config, writes=not dry_run) as ctx:
        report = run_purge(ctx.store, ctx.config.get(RetentionSettings), ctx.now, dry_run=dry_run)
        if as_json:
            echo_json(report.as_json())
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
