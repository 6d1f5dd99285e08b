"""The options several commands share, declared once so that they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: `--config` / `-c`, the same option on every command
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML file (default: $RESET_MAILBOT_CONFIG, ./reset-mailbot.toml)"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON (stable keys)")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only from this date on: YYYY-MM-DD (UTC) or ISO date-time"),
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="At most this many rows")]
MaskOption = Annotated[bool, typer.Option("--mask", help="Mask addresses (screen sharing)")]
RequestId = Annotated[str, typer.Argument(help="Request id, e.g. R-7KQ2M4XA")]
By = Annotated[str, typer.Option("--by", help="Your name: recorded in the audit log")]
