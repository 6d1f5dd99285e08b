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
