"""Running the daemon and its schema: `run`, `db upgrade` and `demo`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from reset_mailbot.cli.context import CliError, ExitCode, fail, load_config
from reset_mailbot.cli.options import ConfigOption

if TYPE_CHECKING:
    import uvicorn

    from reset_mailbot.adapters.db.unit_of_work import Store
    from reset_mailbot.config import Config


def run(
    config: ConfigOption = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Process the inbox, drive due work, then exit"),
    ] = False,
) -> None:
    """Run the daemon: poll the support mailbox, decide, execute, reply."""
    from reset_mailbot import bootstrap
    from reset_mailbot.adapters.db.instance_lock import InstanceLocked, single_instance
    from reset_mailbot.adapters.imap import MailboxError
    from reset_mailbot.config import DatabaseSettings

    cfg = load_config(config)
    if not once:
        # one daemon per SQLite file; a `run --once` beside it is safe (claims, unique keys)
        try:
            with single_instance(cfg.get(DatabaseSettings).resolved_url()):
                daemon = bootstrap.build_daemon(cfg)
                console = _console_beside(cfg, daemon.parts.store)
                try:
                    daemon.run_forever()
                finally:
                    if console is not None:
                        console.should_exit = True
        except InstanceLocked as exc:
            raise CliError(str(exc)) from None
        return
    try:
        report = bootstrap.build_daemon(cfg).run_once()
    except MailboxError as exc:
        raise CliError(f"mailbox: {exc}", ExitCode.REFUSED) from None
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


def _console_beside(cfg: Config, store: Store) -> uvicorn.Server | None:
    """`[console] with_daemon = true`: the console in a thread of this process."""
    from reset_mailbot.config import ConsoleSettings

    if not cfg.get(ConsoleSettings).with_daemon:
        return None
    from reset_mailbot.console.server import make_server, serve_in_thread

    server = make_server(cfg, store)
    serve_in_thread(server)
    return server


def db_upgrade(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema to this version."""
    from reset_mailbot import bootstrap
    from reset_mailbot.adapters.db.migrate import current_revision, head_revision, upgrade

    cfg = load_config(config)
    if cfg.path is None and not any(k.startswith("RESET_MAILBOT_DATABASE__")
                                    for k in os.environ):
        # the default would be a new SQLite file under ./var of whatever directory this is
        fail("no configuration: give --config FILE (or RESET_MAILBOT_CONFIG), or name the "
             "database with RESET_MAILBOT_DATABASE__URL / __DATA_DIR")
    store = bootstrap.build_store(cfg)
    before = current_revision(store.engine)
    upgrade(store.engine)
    typer.echo(f"database schema: {before or '(empty)'} -> {head_revision()}")


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
    console: Annotated[
        bool, typer.Option("--console", help="Then serve the support console on the result "
                                             "(demo login, loopback) until Ctrl-C")] = False,
) -> None:
    """The whole loop against throwaway Dovecot, SMTP, DNS and executor (needs the dev extras)."""
    from reset_mailbot.logs import configure_logging

    configure_logging("warning")
    if check_only:
        from reset_mailbot.demo import run_demo

        run_demo()
        return
    from reset_mailbot.demo_loop import DemoUnavailable, run_loop_demo

    try:
        if executor not in {"http", "manual", "forus-db"}:
            raise CliError(f"--executor must be http, manual or forus-db, not {executor!r}")
        run_loop_demo(keep=keep, executor=executor, serve_console=console)
    except DemoUnavailable as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        raise CliError("interrupted; every service the demo started was stopped",
                       ExitCode.INTERRUPTED) from None
