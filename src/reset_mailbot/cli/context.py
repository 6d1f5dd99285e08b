"""What every command shares: one context object and one error path.

**One error path.** Every command is registered through `cli/__init__.py`'s `register`, which
wraps it in `operator_errors`: whatever goes wrong that an operator can fix ends as one line,
`reset-mailbot: error: ...`, on stderr and an exit code from `ExitCode`, never a traceback.

- 0: done;
- 1: refused or not found (unknown id, wrong state, four eyes), a failed doctor check, an
  unreachable mailbox in `run --once`;
- 2: an operator mistake: configuration, rules, a bad option value, database or schema;
- 130: interrupted.

**One context.** `CliContext` loads the configuration, sets up logging, opens the store and
knows the display time zone. Its schema rule is the daemon's: a command that only reads never
changes the schema (an outdated one is an error naming `db upgrade`); a command that writes
follows `[database] auto_upgrade`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import IntEnum
from functools import wraps
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import typer

if TYPE_CHECKING:
    from reset_mailbot.adapters.db.unit_of_work import Store
    from reset_mailbot.config import Config

# Imports are lazy in the whole CLI: `check` must start fast (issue #14), so a command loads
# the database, the scheduler or the HTTP stack only when it uses them.


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1
    OPERATOR = 2
    INTERRUPTED = 130


class CliError(Exception):
    """Stop the command with one line on stderr and `code`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.OPERATOR) -> None:
        super().__init__(message)
        self.code = code


def not_found(message: str) -> CliError:
    return CliError(message, ExitCode.REFUSED)


def fail(message: str, code: ExitCode = ExitCode.OPERATOR) -> NoReturn:
    typer.echo(f"reset-mailbot: error: {message}", err=True)
    raise typer.Exit(int(code))


F = TypeVar("F", bound=Callable[..., Any])


def operator_errors(func: F) -> F:
    """The one error path (see the module docstring); `register` applies it to every command."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CliError as exc:
            fail(str(exc), exc.code)
        except KeyboardInterrupt:
            fail("interrupted", ExitCode.INTERRUPTED)
        except Exception as exc:
            message = _operator_message(exc)
            if message is None:
                raise
            fail(message)

    return wrapper  # type: ignore[return-value]


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An exception class of a module, if the module was imported (else nothing raised it)."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _operator_message(exc: Exception) -> str | None:
    """The one line for a problem an operator can fix (configuration, rules, schema, database);
    None for anything else, which is a bug and keeps its traceback."""
    for module, name in (("reset_mailbot.config", "ConfigError"),
                         ("reset_mailbot.rules_loader", "RulesError"),
                         ("reset_mailbot.adapters.db.migrate", "SchemaOutdated")):
        kind = _loaded(module, name)
        if kind is not None and isinstance(exc, kind):
            return str(exc)
    database = _loaded("reset_mailbot.adapters.db.engine", "DatabaseError")
    if database is not None and isinstance(exc, database):  # e.g. check --db on another file
        orig = getattr(exc, "orig", None)
        return f"database: {str(orig or exc).strip().splitlines()[0]}"
    return None


#: `--log-level` / `--quiet` before the command: wins over `[log] level` for this run
LOG_LEVEL_OVERRIDE: dict[str, str] = {}


_LEVEL_ORDER = ("debug", "info", "warning", "error")


def load_config(config_path: Path | None, *, for_people: bool = False) -> Config:
    """The configuration, with logging set up from its `[log]` section (or the command line's
    `--log-level` / `--quiet`). `for_people`: a command whose output a person reads (the
    views, `check` without `--json`) logs warnings and errors only, unless `--log-level` asks
    for more: its JSON lines would bury what it prints."""
    from reset_mailbot.config import LogSettings
    from reset_mailbot.config import load_config as _load_config
    from reset_mailbot.logs import configure_logging

    config = _load_config(config_path)
    level = LOG_LEVEL_OVERRIDE.get("level")
    if level is None:
        level = config.get(LogSettings).level
        if for_people and _LEVEL_ORDER.index(level) < _LEVEL_ORDER.index("warning"):
            level = "warning"
    configure_logging(level)
    return config


class CliContext:
    """The configuration, the store (opened on first use) and the display zone of a command.

    Use it as a context manager: the database connections are closed when the command ends.
    """

    def __init__(self, config_path: Path | None, *, writes: bool = False,
                 for_people: bool = False) -> None:
        from reset_mailbot.config import SlaSettings

        self.config = load_config(config_path, for_people=for_people)
        self.writes = writes
        self.zone = ZoneInfo(self.config.get(SlaSettings).timezone)
        self.now = datetime.now(UTC)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from reset_mailbot import bootstrap
            from reset_mailbot.adapters.db.migrate import ensure_schema
            from reset_mailbot.config import DatabaseSettings

            store = bootstrap.build_store(self.config)
            upgrade = self.writes and self.config.get(DatabaseSettings).auto_upgrade
            try:
                ensure_schema(store.engine, auto_upgrade=upgrade)
            except BaseException:
                store.engine.dispose()
                raise
            self._store = store
        return self._store

    def local(self, value: datetime | None) -> str:
        """A time as shown in tables: minutes, in `[sla] timezone`."""
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M") if value else "-"

    def __enter__(self) -> CliContext:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._store is not None:
            self._store.engine.dispose()


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def parse_since(value: str | None) -> datetime | None:
    """`YYYY-MM-DD` is the start of that day in UTC; a naive date-time is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CliError(f"--since {value!r}: use YYYY-MM-DD or an ISO date-time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def choice(value: str | None, allowed: list[str], option: str) -> str | None:
    """`value` if it is one of `allowed` (or None), else an operator error naming them."""
    allowed = sorted(allowed)
    if value is not None and value not in allowed:
        raise CliError(f"{option} {value!r}: one of {', '.join(allowed)}")
    return value
