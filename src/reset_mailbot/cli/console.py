"""`reset-mailbot console`: the support console in the browser, on its own."""

from __future__ import annotations

from typing import Annotated

import typer

from reset_mailbot.cli.context import CliContext
from reset_mailbot.cli.options import ConfigOption


def console(
    config: ConfigOption = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="No login: type a name and pick a role (loopback only)")] = False,
) -> None:
    """Serve the support console on [console] listen (OIDC or proxy login, see the README)."""
    from reset_mailbot.console.server import make_server

    with CliContext(config, writes=True) as ctx:
        server = make_server(ctx.config, ctx.store, demo=demo)
        from reset_mailbot.config import ConsoleSettings

        typer.echo(f"console: {ctx.config.get(ConsoleSettings).base_url}/", err=True)
        server.run()
