"""`reset-mailbot requests done|failed|approve|deny|dry-run`: a person acts on a request.

Only argument parsing and printing; the rules are in `service/actions.py`. Replies these
commands cause are queued in the database and sent by the running daemon's outbox job (or the
next `run --once`), so a command never waits on SMTP and a reply is never lost if SMTP is down.
Exit codes: 0 done, 1 refused (unknown request, wrong state, requester approving their own
request), 2 configuration problems.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from reset_mailbot import bootstrap
from reset_mailbot.adapters.db.migrate import SchemaOutdated, ensure_schema
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.executors.base import ExecutionStatus, Executor
from reset_mailbot.cli_groups import ConfigOption, requests_app
from reset_mailbot.config import (
    Config,
    ConfigError,
    DatabaseSettings,
    ExecutorSettings,
    LogSettings,
    load_config,
)
from reset_mailbot.logs import configure_logging
from reset_mailbot.service import actions
from reset_mailbot.service.actions import ActionOutcome, ActionRefused

RequestId = Annotated[str, typer.Argument(help="Request id, e.g. R-7KQ2M4XA")]
By = Annotated[str, typer.Option("--by", help="Your name: recorded in the audit log")]


def _error(message: str, code: int) -> typer.Exit:
    typer.echo(f"reset-mailbot: error: {message}", err=True)
    return typer.Exit(code)


def _setup(config_path: Path | None) -> tuple[Config, Store]:
    try:
        config = load_config(config_path)
        configure_logging(config.get(LogSettings).level)
        store = bootstrap.build_store(config)
        ensure_schema(store.engine, auto_upgrade=config.get(DatabaseSettings).auto_upgrade)
    except (ConfigError, SchemaOutdated) as exc:
        raise _error(str(exc), 2) from None
    return config, store


def _executor(config: Config) -> Executor | None:
    try:
        return bootstrap.build_executor(config)
    except (ConfigError, ValueError) as exc:
        raise _error(f"[executor]: {exc}", 2) from None


def _close(executor: object) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        close()


def _print(outcome: ActionOutcome) -> None:
    typer.echo(f"{outcome.request_id}: {outcome.summary}")


@requests_app.command("approve")
def approve(request_id: RequestId, by: By, config: ConfigOption = None) -> None:
    """Approve a request waiting for approval and run the executor now (four-eyes gate)."""
    cfg, store = _setup(config)
    executor = _executor(cfg)
    try:
        outcome = actions.approve(
            store, request_id, by=by, executor=executor, support_address=cfg.mailbox.address,
            max_attempts=cfg.get(ExecutorSettings).max_attempts,
            templates=bootstrap.build_templates(cfg),
        )
    except ActionRefused as exc:
        raise _error(str(exc), 1) from None
    finally:
        _close(executor)
        store.engine.dispose()
    _print(outcome)


def _act(config: Path | None, action: Callable[[Config, Store], ActionOutcome]) -> None:
    """Run one state-changing action: refusals are one line and exit 1; always dispose."""
    cfg, store = _setup(config)
    try:
        outcome = action(cfg, store)
    except ActionRefused as exc:
        raise _error(str(exc), 1) from None
    finally:
        store.engine.dispose()
    _print(outcome)


@requests_app.command("deny")
def deny(
    request_id: RequestId,
    by: By,
    reason: Annotated[str, typer.Option("--reason", help="Sent to the municipality")],
    config: ConfigOption = None,
) -> None:
    """Deny a request waiting for approval; the municipality receives the reason."""
    _act(config, lambda cfg, store: actions.deny(
        store, request_id, by=by, reason=reason, support_address=cfg.mailbox.address,
        templates=bootstrap.build_templates(cfg),
    ))


@requests_app.command("done")
def done(
    request_id: RequestId,
    by: By,
    note: Annotated[str | None, typer.Option("--note", help="Kept in the audit log")] = None,
    config: ConfigOption = None,
) -> None:
    """Record that you reset 2FA in the Forus back office; the confirmation is queued."""
    _act(config, lambda cfg, store: actions.mark_done(
        store, request_id, by=by, note=note, support_address=cfg.mailbox.address,
        templates=bootstrap.build_templates(cfg),
    ))


@requests_app.command("failed")
def failed(
    request_id: RequestId,
    by: By,
    reason: Annotated[str, typer.Option("--reason", help="Sent to the municipality")],
    config: ConfigOption = None,
) -> None:
    """Record that the manual reset could not be done; the municipality receives the reason."""
    _act(config, lambda cfg, store: actions.mark_failed(
        store, request_id, by=by, reason=reason, support_address=cfg.mailbox.address,
        templates=bootstrap.build_templates(cfg),
    ))


@requests_app.command("dry-run")
def dry_run(request_id: RequestId, config: ConfigOption = None) -> None:
    """Ask the executor what it would do for a request, changing nothing anywhere."""
    from reset_mailbot.adapters.executors.manual import ManualExecutor

    cfg, store = _setup(config)
    executor = _executor(cfg) or ManualExecutor()
    try:
        state, result = actions.dry_run(store, request_id, executor)
    except ActionRefused as exc:
        raise _error(str(exc), 1) from None
    finally:
        _close(executor)
        store.engine.dispose()
    typer.echo(f"{request_id.strip()} ({state}), executor {executor.name}: dry run")
    if result.status is ExecutionStatus.PENDING_HUMAN:
        typer.echo("a person must reset it:")
    else:
        typer.echo(f"would return: {result.status.value} {result.code}")
    typer.echo(result.detail)
