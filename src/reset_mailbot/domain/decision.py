"""The one place an outcome is composed: `decide(raw, context, now) -> Decision`.

Pure: the only I/O is the injected DKIM key lookup. The order follows the policy:
1. bytes without one unambiguous reading -> rejected [malformed_message | repeated_header |
                                            limit_exceeded | oversize], no reply (wire.py)
2. automatic mail              -> ignored (before anything else, so nothing can loop)
3. exactly one From mailbox    -> else rejected [malformed_from], no reply
4. allowlisted domain          -> else rejected [domain_not_allowlisted], no reply, and no DNS
                                  lookup: cost before trust
5. DKIM aligned with From      -> else rejected [dkim_*], or deferred on a temporary DNS failure
6. individual, registered      -> else rejected [group_mailbox | sender_not_registered], WITH reply
7. what the signature covers   -> the body counts only when its structure fields are signed
                                  [body_not_signed]; a request with no signed date within
                                  max_request_age_days counts for nothing [request_too_old]
8. required items              -> complete, or incomplete with exactly what is missing
A reply goes out only to mail that is authentic and from an allowlisted domain (no backscatter).

Unsigned header fields are read only where they cannot move a decision toward `complete`
(issue #11): an unsigned Message-ID does not identify the message (the key is then a hash of
the bytes, and the signature's b= catches a replay); unsigned In-Reply-To/References do not
attach it to an earlier request (a signed Subject carrying our reply's "[R-...]" tag does); an
unsigned To/Cc cannot knock out an account candidate; unsigned automatic-mail fields are
honoured (they can only suppress a reply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime

from reset_mailbot.domain.addresses import InvalidAddress, normalise_address
from reset_mailbot.domain.authentication import KeyLookup, authenticate
from reset_mailbot.domain.automatic import detect_automatic
from reset_mailbot.domain.extraction import extract_request
from reset_mailbot.domain.message import (
    ParsedMessage,
    decoded_words,
    display_name,
    parse_message,
)
from reset_mailbot.domain.models import (
    AuthenticationResult,
    Decision,
    DkimStatus,
    ResetRequest,
    SenderInfo,
    SignatureVerdict,
)
from reset_mailbot.domain.reasons import Item, MissingDetail, Outcome, ReasonCode
from reset_mailbot.domain.replies import request_ids_in_subject
from reset_mailbot.domain.rules import RuleSet
from reset_mailbot.domain.sender_policy import check_sender
from reset_mailbot.domain.wire import BODY_STRUCTURE_FIELDS, DEFAULT_LIMITS, WireLimits

#: Content-Transfer-Encoding values that leave the bytes as they are: an unsigned one reads
#: exactly like no field at all, so it cannot change what the body says.
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
DEFAULT_MAX_REQUEST_AGE_DAYS = 14


@dataclass(frozen=True)
class DecisionContext:
    """Everything besides the message that a decision depends on."""

    rules: RuleSet
    key_lookup: KeyLookup
    support_address: str
    max_request_age_days: int = DEFAULT_MAX_REQUEST_AGE_DAYS
    limits: WireLimits = field(default=DEFAULT_LIMITS)

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


def _untrusted_structure(message: ParsedMessage, signed: set[str]) -> list[str]:
    """Body-structure fields present in the message but not covered by the signature.

    An unsigned Content-Transfer-Encoding is harmless where it cannot change the bytes read:
    an identity encoding, or a signed multipart Content-Type (RFC 2046 5.1: the parser does not
    decode a multipart container)."""
    fields = [name for name in BODY_STRUCTURE_FIELDS
              if message.header(name) is not None and name not in signed]
    if "content-transfer-encoding" in fields:
        encoding = (message.header("content-transfer-encoding") or "").strip().lower()
        content_type = (message.header("content-type") or "").strip().lower()
        if encoding in _IDENTITY_ENCODINGS or (
            "content-type" in signed and content_type.startswith("multipart/")
        ):
            fields.remove("content-transfer-encoding")
    return fields


def _signed_date(message: ParsedMessage, auth: AuthenticationResult) -> float | None:
    """When the sender's system says the message was written: a signed Date, else DKIM t=."""
    if "date" in auth.signed_headers:
        try:
            written = parsedate_to_datetime(message.header("date") or "")
            if written.tzinfo is None:  # "-0000": UTC, with no claim about the local zone
                written = written.replace(tzinfo=UTC)
            return written.timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return float(auth.signed_at) if auth.signed_at is not None else None


def _distrust(message: ParsedMessage, auth: AuthenticationResult, context: DecisionContext,
              now: float) -> tuple[ReasonCode, str] | None:
    """Why nothing in this authentic message may count toward a reset, or None."""
    unsigned = _untrusted_structure(message, set(auth.signed_headers))
    if unsigned:
        return ReasonCode.BODY_NOT_SIGNED, "not covered by the DKIM signature: " + ", ".join(
            unsigned)
    written = _signed_date(message, auth)
    limit = context.max_request_age_days * 86_400
    if written is None:
        return ReasonCode.REQUEST_TOO_OLD, "no signed date (neither Date in h= nor t=)"
    if now - written > limit:
        days = int((now - written) // 86_400)
        return ReasonCode.REQUEST_TOO_OLD, (
            f"signed {days} days ago (max_request_age_days {context.max_request_age_days})")
    return None


def _trusted_identity(message: ParsedMessage, auth: AuthenticationResult) -> dict[str, object]:
    """Message key and thread fields, from signed header fields only."""
    signed = set(auth.signed_headers)
    return {
        "message_key": message.key if "message-id" in signed else message.hash_key,
        "in_reply_to": message.in_reply_to if "in-reply-to" in signed else None,
        "references": list(message.references) if "references" in signed else [],
        "replay_keys": list(auth.replay_keys),
        "subject_request_ids": request_ids_in_subject(decoded_words(message.subject))
        if "subject" in signed else [],
    }


def _recipients(message: ParsedMessage, signed: set[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(recipients of signed To/Cc, recipients only an unsigned To/Cc names)."""
    trusted: set[str] = set()
    doubtful: set[str] = set()
    for name, addresses in message.recipient_fields().items():
        (trusted if name in signed else doubtful).update(addresses)
    return frozenset(trusted), frozenset(doubtful - trusted)


def decide_parsed(message: ParsedMessage, context: DecisionContext, now: float) -> Decision:
    """Decide one already-parsed message at time `now` (seconds since the epoch; always
    passed: the core never reads a clock, so a decision can be replayed exactly)."""
    base: dict[str, object] = {
        "message_id": message.message_id,
        "message_key": message.hash_key,
        "in_reply_to": None,
        "references": [],
        "subject": message.subject,
    }
    if message.parse_error is not None or message.wire is None:
        return Decision(
            **base,
            outcome=Outcome.REJECTED,
            reasons=[message.problem or ReasonCode.MALFORMED_MESSAGE],
            detail=message.parse_error or "",
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

    verdict = check_sender(mailbox, context.rules.municipalities, context.rules.group_mailboxes)
    sender = SenderInfo(
        address=mailbox.address,
        municipality=verdict.municipality.name if verdict.municipality else None,
        name=display_name(mailbox),
    )
    if verdict.municipality is None:  # no reply whatever DKIM says: do not spend DNS on it
        return Decision(**base, outcome=Outcome.REJECTED, reasons=list(verdict.reasons),
                        sender=sender, detail=verdict.detail or "DKIM not checked")

    auth = authenticate(message.wire, mailbox.domain, context.key_lookup, now)
    dkim_reason = _dkim_reason(auth)
    if dkim_reason is ReasonCode.DNS_TEMPORARY_FAILURE:
        # not a verdict: retry later
        return Decision(
            **base,
            outcome=Outcome.DEFERRED,
            reasons=[dkim_reason, *verdict.reasons],
            sender=sender,
            authentication=auth,
        )
    if dkim_reason is not None:
        return Decision(**base, outcome=Outcome.REJECTED, reasons=[dkim_reason, *verdict.reasons],
                        sender=sender, authentication=auth, detail=verdict.detail)
    base.update(_trusted_identity(message, auth))
    if verdict.reasons:
        return Decision(**base, outcome=Outcome.REJECTED, reasons=list(verdict.reasons),
                        reply=True, sender=sender, authentication=auth, detail=verdict.detail)

    distrust = _distrust(message, auth, context, now)
    if distrust is not None:
        reason, detail = distrust
        request = ResetRequest()
        return Decision(**base, outcome=Outcome.INCOMPLETE, reasons=[reason],
                        missing=request.missing, reply=True, sender=sender,
                        authentication=auth, request=request, detail=detail)

    trusted, doubtful = _recipients(message, set(auth.signed_headers))
    excluded = frozenset({mailbox.address, context.support, *trusted})
    request = extract_request(message, context.rules.extraction, excluded, doubtful - excluded)
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


def decide(raw: bytes, context: DecisionContext, now: float) -> Decision:
    """Decide one message from its raw bytes at time `now` (seconds since the epoch).

    Bad input of any kind gives an outcome with a reason code; an exception escaping from here
    is a bug, which the service catches and turns into a quarantined message.
    """
    return decide_parsed(parse_message(raw, context.limits), context, now)
