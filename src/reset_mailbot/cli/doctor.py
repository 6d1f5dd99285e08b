"""`reset-mailbot doctor`: will `run` work here? One PASS/FAIL line per outside dependency.

The checks are in `doctor_checks.py`, loaded when the command runs. Exit code 1 on any failed
check, including a configuration that does not load (printed as a FAIL line like the others),
so it can gate a deployment.
"""

from __future__ import annotations

from typing import Annotated

import typer

from reset_mailbot.cli.options import ConfigOption


def doctor(
    config: ConfigOption = None,
    dkim_probe: Annotated[
        str | None,
        typer.Option("--dkim-probe", metavar="NAME",
                     help="DNS name of a DKIM key to look up (default: selector1/selector2 "
                          "._domainkey. of the first municipal domain)"),
    ] = None,
) -> None:
    """Check configuration, rules, IMAP, SMTP, DNS, database and executor; exit 1 on a failure."""
    from reset_mailbot.cli.doctor_checks import failed, run_checks
    from reset_mailbot.config import ConfigError, load_config
    from reset_mailbot.logs import configure_logging

    configure_logging("error")
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(failed("config", str(exc), "pass --config PATH or fix the file").line())
        raise typer.Exit(1) from None
    checks = run_checks(cfg, dkim_probe, emit=lambda c: typer.echo(c.line()))
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)
