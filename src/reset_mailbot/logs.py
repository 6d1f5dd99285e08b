"""Structured JSON logs on stderr, one line per event, with personal data masked.

Support staff build alerts on event names and fields (README, "Log events"), so every log call
names its event as the first argument and passes data as fields, never formatted prose. The
masking processor is the last line of defence: addresses in known personal fields and anywhere in
free-text fields are masked (``j***@utrecht.nl``) before rendering; Message-IDs are not personal.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from reset_mailbot.domain.addresses import mask_address
from reset_mailbot.domain.models import Decision

PERSONAL_FIELDS = frozenset(
    {"sender", "from_address", "to", "to_address", "account_email", "requested_by", "address",
     "email", "recipient", "notify_address", "approved_by_address"}
)
_NOT_PERSONAL = frozenset({"message_id", "message_key", "reply_message_id", "in_reply_to"})
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


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


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines to stderr (or `stream`)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_personal_data,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


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
