"""Outcomes and reason codes: the stable vocabulary every decision is explained in.

Codes are stored in the database, written to logs and used by support staff in alerts, so they
never change meaning and are never translated. The README documents each one in a single table.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The one outcome every message gets (policy.md, first section)."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    REJECTED = "rejected"
    IGNORED = "ignored"
    DEFERRED = "deferred"


class ReasonCode(StrEnum):
    """Why a message got its outcome. Several may apply to one message."""

    # what cannot be parsed at all
    MALFORMED_MESSAGE = "malformed_message"
    REPEATED_HEADER = "repeated_header"  # a field allowed once appears twice (issue #11)
    LIMIT_EXCEEDED = "limit_exceeded"  # header size/count, recipients, encoded words, lines
    # authentication
    MALFORMED_FROM = "malformed_from"
    DKIM_MISSING = "dkim_missing"
    DKIM_INVALID = "dkim_invalid"
    DKIM_NOT_ALIGNED = "dkim_not_aligned"
    DNS_TEMPORARY_FAILURE = "dns_temporary_failure"
    # authorisation
    DOMAIN_NOT_ALLOWLISTED = "domain_not_allowlisted"
    GROUP_MAILBOX = "group_mailbox"
    SENDER_NOT_REGISTERED = "sender_not_registered"
    # automatic mail
    AUTO_SUBMITTED = "auto_submitted"
    BOUNCE = "bounce"
    MAILING_LIST = "mailing_list"
    OWN_MESSAGE = "own_message"
    # required items
    AMBIGUOUS_ACCOUNT_EMAIL = "ambiguous_account_email"
    # nothing of the message counts (incomplete, the reply says why; issue #11)
    BODY_NOT_SIGNED = "body_not_signed"  # Content-Type & co. not covered by the signature
    REQUEST_TOO_OLD = "request_too_old"  # signed date older than max_request_age_days
    # processing history (decided by the service, not the pure core)
    DUPLICATE = "duplicate"
    OVERSIZE = "oversize"
    PROCESSING_ERROR = "processing_error"
    CLOSED_REQUEST_FOLLOWUP = "closed_request_followup"
    # why a complete request waits for a person although the approval gate is off (issue #5)
    RATE_LIMITED = "rate_limited"
    STAFF_ACCOUNT = "staff_account"


class Item(StrEnum):
    """The items a request must carry (policy.md, "Required items")."""

    ACCOUNT_EMAIL = "account_email"
    IDENTITY_VERIFIED = "identity_verified"
    RESET_INSTRUCTED = "reset_instructed"


REQUIRED_ITEMS: tuple[Item, ...] = (
    Item.ACCOUNT_EMAIL,
    Item.IDENTITY_VERIFIED,
    Item.RESET_INSTRUCTED,
)


class MissingDetail(StrEnum):
    """Why a required item is missing, where there is more to say than "not found"."""

    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous_account_email"
    NEGATED = "negated"
    CONDITIONAL = "conditional"
    QUESTION = "question"
    TEMPLATE_NO = "template_no"
    INVALID = "invalid"
    # the allowlist reader (issue #12): which word stopped it is in ResetRequest.stopped_at
    UNEXPLAINED = "unexplained"  # a word no affirmative form explains ("hopelijk", "zoon")
    CONTRADICTED = "contradicted"  # another sentence about it holds a doubt ("verlopen")
    RETRACTED = "retracted"  # the message takes the request back or postpones it


# What each code means, in words, for people reading a decision (the support console, issue
# #17). Every ReasonCode has an entry (tests/unit/test_reasons.py); the code stays the key.
REASON_TEXT: dict[str, str] = {
    ReasonCode.MALFORMED_MESSAGE: "the message could not be read as e-mail",
    ReasonCode.REPEATED_HEADER: "a header that may appear once appears more often",
    ReasonCode.LIMIT_EXCEEDED: "the message exceeds a size or count limit",
    ReasonCode.MALFORMED_FROM: "the From address is missing or not one plain address",
    ReasonCode.DKIM_MISSING: "no DKIM signature: the sender cannot be authenticated",
    ReasonCode.DKIM_INVALID: "the DKIM signature does not verify",
    ReasonCode.DKIM_NOT_ALIGNED: "the DKIM signature is not from the From address's domain",
    ReasonCode.DNS_TEMPORARY_FAILURE: "the DKIM key could not be fetched (temporary DNS error)",
    ReasonCode.DOMAIN_NOT_ALLOWLISTED: "the sender's domain is not an allowlisted municipality",
    ReasonCode.GROUP_MAILBOX: "sent from a group mailbox, not by an individual",
    ReasonCode.SENDER_NOT_REGISTERED: "the sender is not a registered official of the "
                                      "municipality",
    ReasonCode.AUTO_SUBMITTED: "an automatic message (out of office, auto-reply)",
    ReasonCode.BOUNCE: "a delivery failure report",
    ReasonCode.MAILING_LIST: "mail from a mailing list",
    ReasonCode.OWN_MESSAGE: "a message sent by reset-mailbot itself",
    ReasonCode.AMBIGUOUS_ACCOUNT_EMAIL: "more than one possible account address",
    ReasonCode.BODY_NOT_SIGNED: "the body is not fully covered by the DKIM signature",
    ReasonCode.REQUEST_TOO_OLD: "the signed message is older than the policy allows",
    ReasonCode.DUPLICATE: "the same message (or signature) was decided before",
    ReasonCode.OVERSIZE: "the message is larger than the mailbox limit",
    ReasonCode.PROCESSING_ERROR: "processing failed; see the error",
    ReasonCode.CLOSED_REQUEST_FOLLOWUP: "a follow-up on a request that is already closed",
    ReasonCode.RATE_LIMITED: "the municipality reached its daily reset limit",
    ReasonCode.STAFF_ACCOUNT: "the account belongs to staff: a person must approve",
}


def reason_text(code: str) -> str:
    """The words for a code, or the code itself when it is not one of ours (older rows)."""
    return REASON_TEXT.get(code, code)
