"""Recognising automatic mail (policy, "Automatic mail"): auto-replies, bounces, lists, our own.

Checked before authentication, so that no reply can ever be sent to a machine and start a loop.
RFC 3834 says `Auto-Submitted: no` means a human sent it; every other value is automatic.
What counts is data in rules/automatic.yaml; only the structural checks (report content types,
null and MAILER-DAEMON senders, our own address) are code.
"""

from __future__ import annotations

import re

from reset_mailbot.domain.message import ParsedMessage
from reset_mailbot.domain.reasons import ReasonCode
from reset_mailbot.domain.rules import AutomaticRules

_NULL_RETURN_PATHS = {"<>", ""}
_FROM_TOKENS = re.compile(r"[\s<>\"@()]+")
_MAX_PARTS_WALKED = 200


def _content_types(message: ParsedMessage) -> set[str]:
    if message.message is None:
        return set()
    found: set[str] = set()
    for count, part in enumerate(message.message.walk()):
        if count >= _MAX_PARTS_WALKED:
            break
        try:
            found.add(part.get_content_type().lower())
        except Exception:
            continue
    return found


def detect_automatic(
    message: ParsedMessage, rules: AutomaticRules, support_address: str
) -> list[ReasonCode]:
    """All automatic-mail reasons that apply, in a stable order; empty for human mail."""
    reasons: list[ReasonCode] = []

    def add(reason: ReasonCode) -> None:
        if reason not in reasons:
            reasons.append(reason)

    for rule in rules.headers:
        for value in message.header_all(rule.header):
            if rule.regex.search(value.strip()):
                add(rule.reason)
                break
    if _content_types(message) & set(rules.report_content_types):
        add(ReasonCode.BOUNCE)
    return_paths = [v.strip() for v in message.header_all("Return-Path")]
    if return_paths and all(v in _NULL_RETURN_PATHS for v in return_paths):
        add(ReasonCode.BOUNCE)
    mailbox = message.from_mailbox
    if mailbox is None and _bounce_from(message.from_values, rules):
        add(ReasonCode.BOUNCE)
    if mailbox is not None:
        if mailbox.local_part in rules.bounce_local_parts:
            add(ReasonCode.BOUNCE)
        if mailbox.address == support_address:
            add(ReasonCode.OWN_MESSAGE)
    return reasons


def _bounce_from(values: tuple[str, ...], rules: AutomaticRules) -> bool:
    """A From that is no mailbox but says "bounce": the null sender `<>` (RFC 5321 4.5.5),
    or a bare MAILER-DAEMON / postmaster name. Only consulted when From does not parse, where
    the alternative is `malformed_from`: no reply either way, but bounces are not quarantined."""
    if len(values) != 1:
        return False
    value = values[0].strip()
    if value.endswith("<>"):
        return True
    tokens = {token.lower() for token in _FROM_TOKENS.split(value) if token}
    return bool(tokens & set(rules.bounce_local_parts))
