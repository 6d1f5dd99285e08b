"""Who may ask (policy, "Authentication" 3 and 4): allowlisted domain, individual, registered.

Identity is the authenticated From address only; display name, Reply-To, Sender and Return-Path
are never consulted here.
"""

from __future__ import annotations

from dataclasses import dataclass

from reset_mailbot.domain.message import FromMailbox
from reset_mailbot.domain.reasons import ReasonCode
from reset_mailbot.domain.rules import GroupMailboxRules, Municipality, MunicipalityList


@dataclass(frozen=True)
class SenderVerdict:
    municipality: Municipality | None
    reasons: tuple[ReasonCode, ...]
    detail: str = ""


def check_sender(
    mailbox: FromMailbox, municipalities: MunicipalityList, groups: GroupMailboxRules
) -> SenderVerdict:
    """Exact domain match (subdomains only if listed), then individual, then registered."""
    municipality = municipalities.by_domain.get(mailbox.domain)
    if municipality is None:
        return SenderVerdict(None, (ReasonCode.DOMAIN_NOT_ALLOWLISTED,), mailbox.domain)
    pattern = groups.matches(mailbox.local_part)
    if pattern is not None:
        return SenderVerdict(municipality, (ReasonCode.GROUP_MAILBOX,), f"matches {pattern}")
    if municipality.contacts and mailbox.address not in municipality.contacts:
        return SenderVerdict(municipality, (ReasonCode.SENDER_NOT_REGISTERED,))
    return SenderVerdict(municipality, ())
