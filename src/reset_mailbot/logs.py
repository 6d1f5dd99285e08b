"""Structured JSON logs on stderr, one line per event, with personal data masked.

Support staff build alerts on event names and fields (README, "Log events"), so every log call
names its event as the first argument and passes data as fields, never formatted prose. The
masking processor is the last line of defence: addresses in known personal fields and anywhere in
free-text fields are masked (``j***@utrecht.nl``) before rendering; Message-IDs are not personal.

The libraries log through the standard library (mail-parser ``mailparser``, dkimpy ``dkimpy``,
imapclient, SQLAlchemy, APScheduler, Alembic; Python warnings as ``py.warnings``). Their records
go through the same masking and JSON rendering (structlog's ``ProcessorFormatter`` on the one
root handler) as one stable event, as if logged with
``log.warning("library_log", logger="mailparser.core", message="Email content ... not handled")``,
plus ``exception`` (the traceback) when the record carries one. Our own events take the same
handler, so one lock serialises every line and no two lines interleave. Libraries log at WARNING
and above (or the configured level when it is higher): their INFO/DEBUG chatter (SQL, IMAP
protocol lines, job runs) stays out of the logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from reset_mailbot.domain.addresses import mask_address
from reset_mailbot.domain.models import Decision

PERSONAL_FIELDS = frozenset(
    {"sender", "from_address", "to", "to_address", "account_email", "requested_by", "address",
     "email", "recipient", "notify_address", "approved_by_address"}
)
_NOT_PERSONAL = frozenset({"message_id", "message_key", "reply_message_id", "in_reply_to"})
# local part and domain bounded (RFC 5321: 64 and 253): an unbounded run is quadratic on a long
# word without "@" (100 KB: >5 s), and log lines carry hostile text
_EMAIL_RE = re.compile(
    r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{0,63}@([A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63})"
)


def mask_text(text: str) -> str:
    """Mask every e-mail address inside free text."""
    return _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_address(value) if "@" in value else value
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_personal_data(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key in _NOT_PERSONAL:
            continue
        if key in PERSONAL_FIELDS:
            event[key] = _mask_value(value)
        elif isinstance(value, str) and "@" in value:
            event[key] = mask_text(value)
    return event


#: The event name of every record a library logs through the standard library (docs/log-events.md).
LIBRARY_EVENT = "library_log"
#: Loggers of the libraries we use; they log at WARNING and above whatever the configured level.
LIBRARY_LOGGERS = (
    "mailparser", "mailparser_reply", "dkim", "dkimpy", "imapclient", "sqlalchemy", "apscheduler",
    "alembic", "py.warnings",
)
_OWN_LOGGER = "reset_mailbot"


def _library_event(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A foreign record as a stable event: the prose goes to `message`, the event is named."""
    record: logging.LogRecord = event["_record"]
    named: dict[str, Any] = {"event": LIBRARY_EVENT, "logger": record.name,
                             "message": event.pop("event")}
    named.update(event)
    return named


_PROCESS: dict[str, str] = {}


def set_instance(instance_id: str | None) -> None:
    """Name the daemon instance in every log line from now on, whatever the thread (issue #15:
    with two daemons on one database, each line says which one wrote it). Context variables
    would not do: the scheduler's threads do not inherit them."""
    if instance_id:
        _PROCESS["instance"] = instance_id
    else:
        _PROCESS.pop("instance", None)


def _add_instance(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in _PROCESS.items():
        event.setdefault(key, value)
    return event


_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    _add_instance,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _JsonLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one root handler. Without a stream it writes to the *current* `sys.stderr` (as
    logging's last-resort handler does), so a replaced stderr (tests, CLI runners) is followed.
    A record that cannot be formatted (a library passing bad %-arguments) becomes a JSON line
    too, instead of logging's plain-text "--- Logging error ---" traceback."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._fixed = value

    def handleError(self, record: logging.LogRecord) -> None:
        try:
            line = json.dumps({
                "event": LIBRARY_EVENT,
                "logger": record.name,
                "message": mask_text(str(record.msg)),
                "error": "log record could not be formatted",
                "level": record.levelname.lower(),
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            })
            self.stream.write(line + self.terminator)
            self.flush()
        except Exception:  # stderr itself is gone: nowhere left to say so
            pass


def _formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        # records from logging.getLogger(...) calls: name them, add level and time
        foreign_pre_chain=[*_SHARED_PROCESSORS, _library_event],
        # every record, ours and the libraries': tracebacks as text, mask, render
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_personal_data,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines to stderr (or `stream`), for our events and every library's.

    Idempotent: a second call replaces the handler the first one installed.
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = _JsonLinesHandler(stream)
    handler.setFormatter(_formatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        # ours from an earlier call, and plain-text console handlers (logging.basicConfig by
        # some library at import): both would print a second, unmasked copy of each line
        if isinstance(old, _JsonLinesHandler) or (
            type(old) is logging.StreamHandler
            and old.stream in {sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__}
        ):
            root.removeHandler(old)
    root.addHandler(handler)
    library_level = max(numeric, logging.WARNING)
    root.setLevel(library_level)  # any other library
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    logging.getLogger(_OWN_LOGGER).setLevel(numeric)
    logging.captureWarnings(True)  # warnings.warn(...) -> "py.warnings" -> JSON, not plain text


def get_logger(name: str = "reset_mailbot") -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)


def decision_fields(decision: Decision) -> dict[str, Any]:
    """The fields of the one `decision` log line per message (docs/log-events.md), shared by
    the daemon and `reset-mailbot check` so both explain a decision the same way."""
    return {
        "message_id": decision.message_id,
        "message_key": decision.message_key,
        "outcome": decision.outcome.value,
        "reasons": [r.value for r in decision.reasons],
        "missing": [m.value for m in decision.missing],
        "reply": decision.reply,
        "sender": decision.sender.address,
        "municipality": decision.sender.municipality,
        "dkim": decision.authentication.dkim.value,
        "signing_domain": decision.authentication.signing_domain,
        "account_email": decision.request.account_email,
    }
