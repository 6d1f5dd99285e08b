"""The command line (typer): `reset-mailbot ...`.

Commands only parse arguments, call `bootstrap` and the service layer, and print. Each group
of commands lives in one module; this one registers them all, explicitly, and wraps every one
in the one error path (`context.operator_errors`: one line on stderr, exit codes in
`context.ExitCode`).

- `decide.py`: `check`, `rules check`;
- `daemon.py`: `run`, `db upgrade`, `demo`;
- `views.py` (read only): `requests list|show`, `messages list|show`, `replies list`, `stats`;
- `actions.py` (they write): `requests approve|deny|done|failed|dry-run`,
  `messages reprocess`, `replies resend`, `purge`;
- `doctor.py`: `doctor`;
- `console.py`: `console` (the web console itself lives in `reset_mailbot.console`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from reset_mailbot.cli import actions, console, daemon, decide, doctor, views
from reset_mailbot.cli.context import operator_errors

app = typer.Typer(
    name="reset-mailbot",
    help="Turns e-mail from municipal staff into safe 2FA resets on the Forus platform.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Inspect and validate the rule files.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
requests_app = typer.Typer(help="See and act on reset requests.", no_args_is_help=True)
messages_app = typer.Typer(help="See and reprocess decided messages.", no_args_is_help=True)
replies_app = typer.Typer(help="See the replies (the outbox) and resend failed ones.",
                          no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        from reset_mailbot import __version__

        typer.echo(f"reset-mailbot {__version__}")
        raise typer.Exit(0)


_LEVELS = ("debug", "info", "warning", "error")


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit."),
    log_level: str | None = typer.Option(
        None, "--log-level", help="Log level for this run: " + ", ".join(_LEVELS)
        + " (default: [log] level)"),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Log errors only (the same as --log-level error)"),
) -> None:
    """Turns e-mail from municipal staff into safe 2FA resets on the Forus platform."""
    from reset_mailbot.cli.context import LOG_LEVEL_OVERRIDE, fail

    if log_level is not None and log_level not in _LEVELS:
        fail(f"--log-level {log_level!r}: one of {', '.join(_LEVELS)}")
    LOG_LEVEL_OVERRIDE.clear()
    if quiet or log_level:
        LOG_LEVEL_OVERRIDE["level"] = "error" if quiet else str(log_level)


def register(group: typer.Typer, name: str, command: Callable[..., Any]) -> None:
    group.command(name)(operator_errors(command))


register(app, "check", decide.check)
register(app, "run", daemon.run)
register(app, "demo", daemon.demo)
register(app, "doctor", doctor.doctor)
register(app, "console", console.console)
register(app, "stats", views.stats)
register(app, "purge", actions.purge)
register(rules_app, "check", decide.rules_check)
register(db_app, "upgrade", daemon.db_upgrade)
register(requests_app, "list", views.requests_list)
register(requests_app, "show", views.requests_show)
register(requests_app, "approve", actions.approve)
register(requests_app, "deny", actions.deny)
register(requests_app, "done", actions.done)
register(requests_app, "failed", actions.failed)
register(requests_app, "dry-run", actions.dry_run)
register(messages_app, "list", views.messages_list)
register(messages_app, "show", views.messages_show)
register(messages_app, "reprocess", actions.messages_reprocess)
register(replies_app, "list", views.replies_list)
register(replies_app, "resend", actions.replies_resend)
app.add_typer(rules_app, name="rules")
app.add_typer(db_app, name="db")
app.add_typer(requests_app, name="requests")
app.add_typer(messages_app, name="messages")
app.add_typer(replies_app, name="replies")


def main() -> None:
    # one name however it is started (`python -m reset_mailbot.cli` too): help and shell
    # completion say `reset-mailbot`
    app(prog_name="reset-mailbot")
