"""The typer command groups and options shared by several CLI modules.

`cli.py` registers the groups; `cli_actions.py` (done/failed/approve/deny/dry-run),
`cli_views.py` (list/show/stats/reprocess) and `cli_ops.py` (doctor/purge) add commands to
them, so each concern lives in one module without a circular import through `cli.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

requests_app = typer.Typer(help="See and act on reset requests.", no_args_is_help=True)
messages_app = typer.Typer(help="See and reprocess decided messages.", no_args_is_help=True)

#: `--config` / `-c`, the same option on every command
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML file (default: $RESET_MAILBOT_CONFIG, ./reset-mailbot.toml)"
    ),
]
