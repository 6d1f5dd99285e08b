"""The reply messages we send to municipalities, built as raw RFC 5322 bytes. Pure: no I/O.

Every reply is an automatic response in the sense of RFC 3834, so it carries
`Auto-Submitted: auto-replied` (and Microsoft's `X-Auto-Response-Suppress: All`, which stops
Exchange out-of-office replies coming back), plus `X-Reset-Mailbot: <kind>` so that our own
messages are recognisable when they return to the mailbox.

Threading headers (RFC 5322 section 3.6.4) are written as raw header lines, never through the
email package's folding: `email.policy.default` folds a long unbroken Outlook Message-ID into
RFC 2047 encoded words, which is illegal for msg-id headers and breaks threading in every
client. The Message-ID itself is passed in: the service generates it with
`make_message_id`, stores it, and only then sends, so that a rare re-send after a crash is
recognisably the same message.

The wording lives in Jinja2 templates under `rules/templates/` (one per kind, language and part,
text and HTML), so support staff can edit it without touching code; `reply_templates.py`
compiles them and `rules_loader.load_reply_templates` (an adapter) loads and checks them
once. The Dutch texts follow the tone of the Forus help article "2FA herstel" (addressing the
municipal employee as "je"); the fill-in block repeats the items the article asks for. English
texts are used for requests that were written in English. Every reply is multipart/alternative:
text/plain first (what the extraction reads when the municipality answers), then a simple
text/html part.

Why one module of ~500 lines: the reply kinds, their data and the MIME assembly change
together (a new kind needs all three), and the raw header writing must stay next to the one
place that builds messages, so nobody folds a Message-ID through the email package again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from enum import StrEnum
from io import BytesIO
from typing import Any, Literal
from zoneinfo import ZoneInfo

from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Item, MissingDetail, ReasonCode
from reset_mailbot.domain.reply_templates import PARTS, ReplyTemplates

Language = Literal["nl", "en"]
LANGUAGES: tuple[Language, ...] = ("nl", "en")
DEFAULT_LANGUAGE: Language = "nl"

# RFC 5322 msg-id, restricted to what we can write safely: printable ASCII, no spaces or brackets.
_MSGID_RE = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")
# one repetition per run of blanks ("\s*(?:\[\d+\])?\s*" was quadratic on a long one)
_REPLY_PREFIX_RE = re.compile(r"^\s*(?:(?:re|antw|aw|sv|vs)\s*(?:\[\d+\]\s*)?:\s*)+", re.IGNORECASE)
_MAX_REFERENCES = 20  # keep the chain bounded: first id (thread root) + the most recent ones
_MONTHS_NL = (
    "januari", "februari", "maart", "april", "mei", "juni",
    "juli", "augustus", "september", "oktober", "november", "december",
)  # fmt: skip
_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTHS = {"nl": _MONTHS_NL, "en": _MONTHS_EN}
_BLANK_RUNS_RE = re.compile(r"\n{3,}")


class ReplyKind(StrEnum):
    """Which reply to send; also the value of the `X-Reset-Mailbot` header."""

    CONFIRMATION = "confirmation"
    INCOMPLETE = "incomplete"
    REJECTED_GROUP = "rejected_group"
    SENDER_NOT_REGISTERED = "sender_not_registered"
    FAILED = "failed"
    DENIED = "denied"
    SLA_NOTICE = "sla_notice"  # internal, to Forus support: not a reply (see render_notice)


#: the kinds that answer a municipality (render_reply); SLA_NOTICE is internal (render_notice)
REPLY_KINDS = tuple(k for k in ReplyKind if k is not ReplyKind.SLA_NOTICE)

#: Reasons that void a whole message; the incomplete reply explains each in a paragraph.
NOTICE_REASONS = frozenset({ReasonCode.BODY_NOT_SIGNED, ReasonCode.REQUEST_TOO_OLD})


@dataclass(frozen=True)
class SlaFacts:
    """What an SLA notice says about one request (kind "sla_notice")."""

    request_id: str
    breach: bool  # past the deadline (else: close to it)
    deadline: datetime
    state: str
    working_days: int


class ReplyError(ValueError):
    """The data cannot make a valid reply (no recipient, bad Message-ID, naive datetime, ...)."""


@dataclass(frozen=True)
class ReplyData:
    """What a reply needs to know about the message it answers and the request it is about."""

    recipient: str  # the authenticated sender; never Reply-To
    subject: str = ""
    message_id: str | None = None  # of the message we answer
    references: tuple[str, ...] = ()  # its References
    in_reply_to: str | None = None  # its In-Reply-To (used when References is empty)
    account_email: str | None = None
    case_reference: str | None = None
    municipality: str | None = None
    missing: tuple[Item, ...] = ()
    missing_details: Mapping[Item, MissingDetail] = field(default_factory=dict)
    stopped_at: Mapping[Item, str] = field(default_factory=dict)  # the word that stopped it
    failure_code: str | None = None  # executor result code, for kind "failed"
    denial_reason: str | None = None  # free text from the second reviewer, for kind "denied"
    failure_reason: str | None = None  # free text from `requests failed --reason`, kind "failed"
    approved_by: str | None = None  # four-eyes approver (issue #5), for kind "confirmation"
    denied_by: str | None = None  # the reviewer who denied, for kind "denied"
    executed_at: datetime | None = None  # for kind "confirmation"; defaults to `now`
    # why nothing in the message counted (kind "incomplete"): reason codes in NOTICE_REASONS
    notices: tuple[str, ...] = ()
    # the request this reply is about: its id goes into the subject ("[R-ABCD2345]"), which
    # Microsoft 365 signs, so a reply to our reply finds its request even where In-Reply-To
    # and References are not signed (and therefore not trusted; issue #11)
    request_id: str | None = None
    sla: SlaFacts | None = None  # for kind "sla_notice"

    @classmethod
    def from_decision(cls, decision: Decision, **overrides: object) -> ReplyData:
        """Take recipient, subject, thread and request items from a Decision."""
        if not decision.sender.address:
            raise ReplyError("the decision has no authenticated sender to reply to")
        details = dict(decision.request.missing_details)
        if (
            ReasonCode.AMBIGUOUS_ACCOUNT_EMAIL in decision.reasons
            and decision.request.account_email is None
        ):
            details.setdefault(Item.ACCOUNT_EMAIL, MissingDetail.AMBIGUOUS)
        values: dict[str, object] = {
            "recipient": decision.sender.address,
            "subject": decision.subject,
            "message_id": decision.message_id,
            "references": tuple(decision.references),
            "in_reply_to": decision.in_reply_to,
            "account_email": decision.request.account_email,
            "case_reference": decision.request.case_reference,
            "municipality": decision.sender.municipality,
            "missing": tuple(decision.missing or decision.request.missing),
            "missing_details": details,
            "stopped_at": dict(decision.request.stopped_at),
            "notices": tuple(r.value for r in decision.reasons if r in NOTICE_REASONS),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def make_message_id(domain: str) -> str:
    """A new globally unique Message-ID on our own domain (RFC 5322 section 3.6.4)."""
    try:
        ascii_domain = domain.strip().lower().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ReplyError(f"cannot use {domain!r} in a Message-ID") from exc
    message_id = f"<rmb.{secrets.token_hex(16)}@{ascii_domain}>"
    if not _MSGID_RE.match(message_id):
        raise ReplyError(f"cannot use {domain!r} in a Message-ID")
    return message_id


def reply_subject(original: str, request_id: str | None = None) -> str:
    """Subject "Re: <subject>" once, whatever prefixes (Re:, RE:, Antw:, AW:) came before,
    ending in the request's tag "[R-...]" once (see ReplyData.request_id)."""
    text = " ".join(original.split())
    text = _REPLY_PREFIX_RE.sub("", text)
    text = f"Re: {text}" if text else "Re: 2FA-herstel"
    if request_id and request_tag(request_id) not in text:
        text = f"{text} {request_tag(request_id)}"
    return text


def request_tag(request_id: str) -> str:
    return f"[{request_id}]"


_REQUEST_TAG_RE = re.compile(r"\[(R-[A-Z2-7]{8})\]")


def request_ids_in_subject(subject: str) -> list[str]:
    """The request tags our replies put in their subject, as a reply carries them back."""
    return sorted(set(_REQUEST_TAG_RE.findall(subject[:2000])))


def thread_headers(data: ReplyData) -> tuple[str | None, list[str]]:
    """In-Reply-To and References for a reply, per RFC 5322 section 3.6.4.

    References = the parent's References (or else its In-Reply-To) followed by the parent's
    Message-ID. Anything that is not a well-formed msg-id is dropped rather than copied, so no
    header injection can ride along.
    """
    parent = data.message_id if data.message_id and _MSGID_RE.match(data.message_id) else None
    chain = [r for r in data.references if _MSGID_RE.match(r)]
    if not chain and data.in_reply_to and _MSGID_RE.match(data.in_reply_to):
        chain = [data.in_reply_to]
    if parent:
        chain.append(parent)
    deduped: list[str] = []
    for msgid in chain:
        if msgid not in deduped:
            deduped.append(msgid)
    if len(deduped) > _MAX_REFERENCES:
        deduped = [deduped[0], *deduped[-(_MAX_REFERENCES - 1) :]]
    return parent, deduped


@dataclass(frozen=True)
class RenderedReply:
    """A built reply and the two parts of it the outbox stores for people to read.

    Returned together because the text and subject are known while building; parsing them back
    out of the bytes cost more than the rest of queueing a reply (bench/daemon_drain.py).
    """

    rfc822: bytes
    subject: str
    text: str


def _check_envelope(now: datetime, message_id: str, recipient: str) -> None:
    """What every message we build needs: an aware time, our own Message-ID, one recipient
    (no header injection through any of them)."""
    if now.tzinfo is None:
        raise ReplyError("now must be timezone-aware")
    if not _MSGID_RE.match(message_id):
        raise ReplyError(f"not a usable Message-ID: {message_id!r}")
    if not recipient or any(c in recipient for c in "\r\n"):
        raise ReplyError("no usable recipient")


def render_reply(
    kind: ReplyKind | str,
    data: ReplyData | Decision,
    *,
    support_address: str,
    now: datetime,
    reply_message_id: str,
    language: Language | str = DEFAULT_LANGUAGE,
    from_name: str = "Forus Support",
    timezone: str = "Europe/Amsterdam",
    templates: ReplyTemplates,
) -> RenderedReply:
    """The complete reply (CRLF bytes) with its subject and text part.

    `templates` are the loaded rule set's (`RuleSet.templates`, loaded by an adapter). An
    unknown `language` falls back to Dutch, the default of the policy. Pure: the same
    arguments give the same bytes.
    """
    kind = ReplyKind(kind)
    if isinstance(data, Decision):
        data = ReplyData.from_decision(data)
    _check_envelope(now, reply_message_id, data.recipient)
    if kind is ReplyKind.INCOMPLETE and not data.missing:
        raise ReplyError("an incomplete reply must name at least one missing item")
    if kind is ReplyKind.SLA_NOTICE:
        raise ReplyError("an SLA notice is not a reply: use render_notice")
    if language not in templates.languages:
        language = DEFAULT_LANGUAGE
    context = template_context(kind, data, now.astimezone(ZoneInfo(timezone)), language,
                               support_contact=templates.support_contact or support_address)
    text = _tidy_text(templates.render(kind.value, language, "txt", context))
    html = templates.render(kind.value, language, "html", context).strip() + "\n"

    subject = reply_subject(data.subject, data.request_id)
    generated = _mime(
        text, html,
        headers=[
            ("From", formataddr((from_name, support_address)) if from_name else support_address),
            ("To", data.recipient),
            ("Subject", _header_value(subject)),
            ("Date", format_datetime(now)),
            ("Auto-Submitted", "auto-replied"),
            ("X-Auto-Response-Suppress", "All"),
            ("X-Reset-Mailbot", kind.value),
        ],
        # "=_" cannot occur in quoted-printable text, so this boundary never collides with a
        # body; deriving it from our Message-ID keeps the bytes reproducible.
        boundary="=_rmb_" + hashlib.sha256(reply_message_id.encode("ascii")).hexdigest()[:32],
    )

    parent, references = thread_headers(data)
    raw_lines = [f"Message-ID: {reply_message_id}"]
    if parent:
        raw_lines.append(f"In-Reply-To: {parent}")
    if references:
        # One msg-id per line: folding between msg-ids is legal (CFWS) and never needs encoding.
        raw_lines.append("References: " + "\r\n ".join(references))
    head = ("\r\n".join(raw_lines) + "\r\n").encode("ascii")
    return RenderedReply(rfc822=head + generated, subject=subject, text=text)


# The email package's compat32 MIME classes: ~3x faster than EmailMessage + policy.SMTP (whose
# header registry re-parses every header we set), which was most of the cost of queueing a reply.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_CRLF = compat32.clone(linesep="\r\n")


def _header_value(value: str) -> str | Header:
    """ASCII as it is (folded by the generator), anything else as RFC 2047 encoded words."""
    return value if value.isascii() else Header(value, "utf-8")


def _mime(text: str, html: str, headers: list[tuple[str, str | Header]], boundary: str) -> bytes:
    """multipart/alternative of quoted-printable UTF-8 text and HTML, CRLF line ends."""
    outer = MIMEMultipart("alternative", boundary=boundary, policy=_CRLF)
    for name, value in headers:
        outer[name] = value
    for subtype, body in (("plain", text), ("html", html)):
        part = MIMEText(body, subtype, _UTF8_QP, policy=_CRLF)
        del part["MIME-Version"]  # only the top level carries it (RFC 2045 section 4)
        outer.attach(part)
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_CRLF).flatten(outer)
    return out.getvalue()


def template_context(
    kind: ReplyKind, data: ReplyData, now: datetime, language: str, *,
    support_contact: str = "",
) -> dict[str, Any]:
    """The variables a template sees (rules/templates/README.md lists them).

    `support_contact`: how to reach Forus support ([replies] support_contact, else the support
    address), e.g. "support@forus.io" or "085 - 123 45 67 (werkdagen) of support@forus.io".

    Plain strings, lists and dicts only, so the sandboxed templates cannot reach into our
    objects; dates are formatted here because month names are not worth a template's while.
    """
    when = data.executed_at.astimezone(now.tzinfo) if data.executed_at else now
    months = _MONTHS.get(language, _MONTHS_NL)
    return {
        "kind": kind.value,
        "language": language,
        "support_contact": support_contact,
        "recipient": data.recipient,
        "subject": data.subject,
        "account_email": data.account_email,
        "case_reference": data.case_reference,
        "municipality": data.municipality,
        "missing": [
            {
                "item": item.value,
                "detail": (
                    data.missing_details[item].value if item in data.missing_details else None
                ),
                "word": data.stopped_at.get(item),
            }
            for item in data.missing
        ],
        "notice_codes": list(data.notices),
        "failure_code": data.failure_code,
        "denial_reason": data.denial_reason,
        "failure_reason": data.failure_reason,
        "approved_by": data.approved_by,
        "denied_by": data.denied_by,
        "executed_on": f"{when.day} {months[when.month - 1]} {when.year}",
        "executed_time": f"{when:%H:%M}",
        "sla": _sla_context(data.sla, now) if data.sla is not None else None,
    }


def _sla_context(sla: SlaFacts, now: datetime) -> dict[str, Any]:
    hours = (now - sla.deadline).total_seconds() / 3600
    local = sla.deadline.astimezone(now.tzinfo)
    return {
        "request_id": sla.request_id,
        "breach": sla.breach,
        "deadline_local": f"{local:%Y-%m-%d %H:%M %Z}",
        "deadline_utc": f"{sla.deadline.astimezone(UTC):%Y-%m-%d %H:%M}",
        "state": sla.state,
        "working_days": sla.working_days,
        "overdue": hours >= 0,
        "hours": f"{abs(hours):.1f}",
    }


def render_notice(
    data: ReplyData,
    *,
    from_address: str,
    now: datetime,
    message_id: str,
    language: Language | str = "en",
    timezone: str = "Europe/Amsterdam",
    templates: ReplyTemplates,
) -> RenderedReply:
    """The internal SLA notice to Forus support (`data.recipient` is `[sla] notify_address`):
    a new message, not a reply, so no thread headers and Auto-Submitted: auto-generated. The
    wording is rules/templates/sla_notice.*.j2, like every reply's."""
    sla = data.sla
    if sla is None:
        raise ReplyError("an SLA notice needs its SlaFacts")
    _check_envelope(now, message_id, data.recipient)
    if language not in templates.languages:
        language = DEFAULT_LANGUAGE
    kind = ReplyKind.SLA_NOTICE
    context = template_context(kind, data, now.astimezone(ZoneInfo(timezone)), language,
                               support_contact=templates.support_contact or from_address)
    text = _tidy_text(templates.render(kind.value, language, "txt", context))
    html = templates.render(kind.value, language, "html", context).strip() + "\n"
    label = "SLA breach" if sla.breach else "SLA warning"
    subject = f"[reset-mailbot] {label}: {sla.request_id} ({data.municipality or '-'})"
    generated = _mime(
        text, html,
        headers=[
            ("From", from_address),
            ("To", data.recipient),
            ("Subject", _header_value(subject)),
            ("Date", format_datetime(now)),
            ("Auto-Submitted", "auto-generated"),
            ("X-Reset-Mailbot", kind.value),
        ],
        boundary="=_rmb_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:32],
    )
    head = f"Message-ID: {message_id}\r\n".encode("ascii")
    return RenderedReply(rfc822=head + generated, subject=subject, text=text)


def _tidy_text(text: str) -> str:
    """Forgive template whitespace: no trailing blanks, at most one empty line in a row."""
    lines = "\n".join(line.rstrip() for line in text.splitlines())
    return _BLANK_RUNS_RE.sub("\n\n", lines).strip("\n") + "\n"


_SAMPLE_FAILURES = (
    None, "account_not_found", "two_factor_not_enabled", "ambiguous_account", "http_500"
)


def check_templates(templates: ReplyTemplates) -> None:
    """Render every reply kind in every language from sample data; raise TemplateError if one
    fails. Incomplete is tried with every item under every detail, failed with every code, so
    a missing phrase or a misspelt variable is found at load time, not in production."""
    now = datetime(2026, 11, 26, 8, 15, tzinfo=UTC)
    base = ReplyData(
        recipient="j.jansen@utrecht.nl",
        subject="Herstel 2FA",
        message_id="<sample@utrecht.nl>",
        account_email="fam.ozturk@outlook.com",
        case_reference="2026-00871",
        municipality="Utrecht",
        denial_reason="Naam komt niet overeen",
        failure_reason="Het account is opgeheven",
        approved_by="Petra de Boer",
        denied_by="Petra de Boer",
        executed_at=now,
    )
    items = tuple(Item)
    samples: list[tuple[ReplyKind, ReplyData]] = [
        (ReplyKind.INCOMPLETE, _replace(base, missing=items, missing_details={})),
        *(
            (
                ReplyKind.INCOMPLETE,
                _replace(base, missing=items, missing_details=dict.fromkeys(items, detail)),
            )
            for detail in MissingDetail
        ),
        *(
            (ReplyKind.INCOMPLETE, _replace(base, missing=items, notices=(reason.value,),
                                            stopped_at=dict.fromkeys(items, "hopelijk")))
            for reason in sorted(NOTICE_REASONS)
        ),
        *((ReplyKind.FAILED, _replace(base, failure_code=c)) for c in _SAMPLE_FAILURES),
        *(
            (kind, _replace(base, account_email=None, case_reference=None, municipality=None,
                            failure_reason=None, approved_by=None, denied_by=None))
            for kind in REPLY_KINDS
            if kind is not ReplyKind.INCOMPLETE
        ),
        *((kind, base) for kind in REPLY_KINDS if kind is not ReplyKind.INCOMPLETE),
        *(
            (ReplyKind.SLA_NOTICE, _replace(base, municipality=municipality, sla=SlaFacts(
                "R-ABCD2345", breach, now + timedelta(hours=hours), "complete", 2)))
            for breach, hours in ((True, -8), (False, 6))
            for municipality in ("Utrecht", None)
        ),
    ]
    for language in templates.languages:
        for kind, data in samples:
            context = template_context(kind, data, now, language,
                                       support_contact="support@forus.io")
            for part in PARTS:  # rendering is what can fail; the MIME assembly cannot
                templates.render(kind.value, language, part, context)


def _replace(data: ReplyData, **changes: Any) -> ReplyData:
    return dataclasses.replace(data, **changes)
