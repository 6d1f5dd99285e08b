"""The one place an outcome is composed: `decide(raw, rules, key_lookup, ...) -> Decision`.

Pure: the only I/O is the injected DKIM key lookup. The order follows the policy:
1. unreadable bytes            -> rejected [malformed_message], no reply
2. automatic mail              -> ignored (before anything else, so nothing can loop)
3. exactly one From mailbox    -> else rejected [malformed_from], no reply
4. DKIM aligned with From      -> else rejected [dkim_*], or deferred on a temporary DNS failure
5. allowlisted domain          -> else rejected [domain_not_allowlisted], no reply
6. individual, registered      -> else rejected [group_mailbox | sender_not_registered], WITH reply
7. required items              -> complete, or incomplete with exactly what is missing
A reply goes out only to mail that is authentic and from an allowlisted domain (no backscatter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from reset_mailbot.domain.addresses import InvalidAddress, normalise_address
from reset_mailbot.domain.authentication import KeyLookup, authenticate
from reset_mailbot.domain.automatic import detect_automatic
from reset_mailbot.domain.extraction import extract_request
from reset_mailbot.domain.message import ParsedMessage, display_name, parse_message
from reset_mailbot.domain.models import (
    AuthenticationResult,
    Decision,
    DkimStatus,
    SenderInfo,
    SignatureVerdict,
)
from reset_mailbot.domain.reasons import Item, MissingDetail, Outcome, ReasonCode
from reset_mailbot.domain.sender_policy import check_sender
from reset_mailbot.rules_loader import RuleSet


@dataclass(frozen=True)
class DecisionContext:
    """Everything besides the message that a decision depends on."""

    rules: RuleSet
    key_lookup: KeyLookup
    support_address: str

    @property
    def support(self) -> str:
        try:
            return normalise_address(self.support_address)
        except InvalidAddress:
            return self.support_address.lower()


def _dkim_reason(auth: AuthenticationResult) -> ReasonCode | None:
    if auth.dkim is DkimStatus.PASS and auth.aligned:
        return None
    if auth.dkim is DkimStatus.NONE:
        return ReasonCode.DKIM_MISSING
    if auth.dkim is DkimStatus.TEMPERROR:
        return ReasonCode.DNS_TEMPORARY_FAILURE
    if any(s.verdict is SignatureVerdict.PASS for s in auth.signatures):
        return ReasonCode.DKIM_NOT_ALIGNED
    return ReasonCode.DKIM_INVALID


def decide_parsed(
    message: ParsedMessage, context: DecisionContext, now: float | None = None
) -> Decision:
    """Decide one already-parsed message."""
    now = time.time() if now is None else now
    base = {
        "message_id": message.message_id,
        "message_key": message.key,
        "in_reply_to": message.in_reply_to,
        "references": list(message.references),
        "subject": message.subject,
    }
    if message.parse_error is not None:
        return Decision(
            **base,
            outcome=Outcome.REJECTED,
            reasons=[ReasonCode.MALFORMED_MESSAGE],
            detail=message.parse_error,
        )

    automatic = detect_automatic(message, context.rules.automatic, context.support)
    sender_address = message.from_mailbox.address if message.from_mailbox else None
    if automatic:
        return Decision(
            **base,
            outcome=Outcome.IGNORED,
            reasons=automatic,
            sender=SenderInfo(address=sender_address, name=display_name(message.from_mailbox)),
        )

    mailbox = message.from_mailbox
    if mailbox is None:
        return Decision(
            **base,
            outcome=Outcome.REJECTED,
            reasons=[ReasonCode.MALFORMED_FROM],
            detail=message.from_problem or "",
        )

    auth = authenticate(message.raw, mailbox.domain, context.key_lookup, now)
    verdict = check_sender(mailbox, context.rules.municipalities, context.rules.group_mailboxes)
    sender = SenderInfo(
        address=mailbox.address,
        municipality=verdict.municipality.name if verdict.municipality else None,
        name=display_name(mailbox),
    )
    dkim_reason = _dkim_reason(auth)
    allowlisted = verdict.municipality is not None

    if dkim_reason is ReasonCode.DNS_TEMPORARY_FAILURE and allowlisted:
        # not a verdict: retry later (only worth it for a sender we could act on)
        return Decision(
            **base,
            outcome=Outcome.DEFERRED,
            reasons=[dkim_reason, *verdict.reasons],
            sender=sender,
            authentication=auth,
        )
    if dkim_reason is not None or verdict.reasons:
        reasons = [r for r in (dkim_reason, *verdict.reasons) if r is not None]
        return Decision(
            **base,
            outcome=Outcome.REJECTED,
            reasons=reasons,
            reply=dkim_reason is None and allowlisted,
            sender=sender,
            authentication=auth,
            detail=verdict.detail,
        )

    excluded = frozenset({mailbox.address, context.support, *message.recipients})
    request = extract_request(message, context.rules.extraction, excluded)
    missing = request.missing
    reasons: list[ReasonCode] = []
    if request.missing_details.get(Item.ACCOUNT_EMAIL) is MissingDetail.AMBIGUOUS:
        reasons.append(ReasonCode.AMBIGUOUS_ACCOUNT_EMAIL)
    return Decision(
        **base,
        outcome=Outcome.INCOMPLETE if missing else Outcome.COMPLETE,
        reasons=reasons,
        missing=missing,
        reply=True,
        sender=sender,
        authentication=auth,
        request=request,
    )


def decide(raw: bytes, context: DecisionContext, now: float | None = None) -> Decision:
    """Decide one message from its raw bytes.

    Bad input of any kind gives an outcome with a reason code; an exception escaping from here
    is a bug, which the service catches and turns into a quarantined message.
    """
    return decide_parsed(parse_message(raw), context, now)
