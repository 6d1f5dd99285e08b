"""Anonymising personal data for retention (AVG/GDPR, issue #6 item 5): pure functions over
addresses, free text and the stored JSON, used by the retention job (service/retention.py).

An address becomes `***@domain` (the domain is the municipality or a mail provider: useful for
statistics, not personal); free text that may hold names becomes `[anonymised]`.
"""

from __future__ import annotations

import re
from typing import Any

from reset_mailbot.domain.request_state import RequestState

ANONYMISED = "[anonymised]"

# bounded like logs._EMAIL_RE: linear on hostile text
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@([A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63})")
# JSON keys whose string value is personal as a whole (names, addresses, quoted text).
_PERSONAL_KEYS = frozenset({
    "sender", "address", "account_email", "to", "to_address", "recipient", "requested_by",
    "requested_by_name", "approved_by", "denied_by", "case_reference", "text", "subject",
    "body", "reason", "detail", "error", "name", "email", "notify_address",
})
# Keys that look like addresses but are protocol identifiers (policy: Message-IDs are not
# personal), or structural values that reuse a personal-sounding key name.
_NOT_PERSONAL_KEYS = frozenset({
    "message_id", "message_key", "reply_message_id", "in_reply_to", "references",
    "idempotency_key",
})
# State names stored under "to"/"from" in `state_changed`: values, not people.
_STATE_VALUES = frozenset(s.value for s in RequestState)

def anonymise_address(address: str | None) -> str | None:
    """`j.devries@utrecht.nl` -> `***@utrecht.nl`; no address stays None."""
    if not address:
        return address
    _local, sep, domain = address.strip().rpartition("@")
    return f"***@{domain.lower()}" if sep and domain else ANONYMISED


def anonymise_text(text: str | None) -> str | None:
    """Remove every address from free text (the rest is kept: error codes, sizes)."""
    if text is None:
        return None
    return _EMAIL_RE.sub(lambda m: f"***@{m.group(1).lower()}", text)


def scrub(value: Any, key: str | None = None) -> Any:
    """A JSON value with personal data replaced; structure, codes and numbers are kept."""
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, key) for v in value]
    if not isinstance(value, str) or key in _NOT_PERSONAL_KEYS:
        return value
    if key in _PERSONAL_KEYS:
        if key == "to" and value in _STATE_VALUES:
            return value
        if "@" in value and _EMAIL_RE.fullmatch(value.strip()):
            return anonymise_address(value)
        return ANONYMISED if value else value
    if "@" in value and _EMAIL_RE.search(value):
        # an address under a key we do not know: the text around it may be a name
        return anonymise_address(value) if _EMAIL_RE.fullmatch(value.strip()) else ANONYMISED
    return value


def scrub_decision(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored decision JSON without personal fields (sender address, items, evidence)."""
    if decision is None:
        return None
    return scrub(decision)
