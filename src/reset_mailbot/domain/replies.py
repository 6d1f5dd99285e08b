"""The reply messages we send to municipalities, built as raw RFC 5322 bytes. Pure: no I/O.

Every reply is an automatic response in the sense of RFC 3834, so it carries
`Auto-Submitted: auto-replied` (and Microsoft's `X-Auto-Response-Suppress: All`, which stops
Exchange out-of-office replies coming back), plus `X-Reset-Mailbot: <kind>` so that our own
messages are recognisable when they return to the mailbox.

Threading headers (RFC 5322 section 3.6.4) are written as raw header lines, never through the
email package's folding: `email.policy.default` folds a long unbroken Outlook Message-ID into
RFC 2047 encoded words, which is illegal for msg-id headers and breaks threading in every client
(notes/pitfalls.md). The Message-ID itself is passed in: the service generates it with
`make_message_id`, stores it, and only then sends, so that a rare re-send after a crash is
recognisably the same message.

The wording follows the tone of the Forus help article "2FA herstel" (Dutch, addressing the
municipal employee as "je"); the fill-in block repeats the items the article asks for. English
texts exist for requests that were written in English.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from enum import StrEnum
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo

from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Item, MissingDetail, ReasonCode

Language = Literal["nl", "en"]

# RFC 5322 msg-id, restricted to what we can write safely: printable ASCII, no spaces or brackets.
_MSGID_RE = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")
_REPLY_PREFIX_RE = re.compile(r"^\s*(?:(?:re|antw|aw|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MAX_REFERENCES = 20  # keep the chain bounded: first id (thread root) + the most recent ones
_MONTHS_NL = (
    "januari", "februari", "maart", "april", "mei", "juni",
    "juli", "augustus", "september", "oktober", "november", "december",
)  # fmt: skip
_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class ReplyKind(StrEnum):
    """Which reply to send; also the value of the `X-Reset-Mailbot` header."""

    CONFIRMATION = "confirmation"
    INCOMPLETE = "incomplete"
    REJECTED_GROUP = "rejected_group"
    SENDER_NOT_REGISTERED = "sender_not_registered"
    FAILED = "failed"
    DENIED = "denied"


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
    failure_code: str | None = None  # executor result code, for kind "failed"
    denial_reason: str | None = None  # free text from the second reviewer, for kind "denied"
    executed_at: datetime | None = None  # for kind "confirmation"; defaults to `now`

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


def reply_subject(original: str) -> str:
    """Subject "Re: <subject>" once, whatever prefixes (Re:, RE:, Antw:, AW:) came before."""
    text = " ".join(original.split())
    text = _REPLY_PREFIX_RE.sub("", text)
    return f"Re: {text}" if text else "Re: 2FA-herstel"


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


def build_reply(
    kind: ReplyKind | str,
    data: ReplyData | Decision,
    *,
    support_address: str,
    now: datetime,
    reply_message_id: str,
    language: Language = "nl",
    from_name: str = "Forus Support",
    timezone: str = "Europe/Amsterdam",
) -> bytes:
    """The complete reply as CRLF bytes, ready for `SmtpSender.send` and for storing."""
    kind = ReplyKind(kind)
    if isinstance(data, Decision):
        data = ReplyData.from_decision(data)
    if now.tzinfo is None:
        raise ReplyError("now must be timezone-aware")
    if not _MSGID_RE.match(reply_message_id):
        raise ReplyError(f"not a usable Message-ID: {reply_message_id!r}")
    if not data.recipient or any(c in data.recipient for c in "\r\n"):
        raise ReplyError("no usable recipient")
    zone = ZoneInfo(timezone)
    texts = _TEXTS[language]
    if kind is ReplyKind.INCOMPLETE and not data.missing:
        raise ReplyError("an incomplete reply must name at least one missing item")
    body = texts.body(kind, data, now.astimezone(zone))

    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"{from_name} <{support_address}>" if from_name else support_address
    msg["To"] = data.recipient
    msg["Subject"] = reply_subject(data.subject)
    msg["Date"] = format_datetime(now)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Reset-Mailbot"] = kind.value
    msg.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
    generated = msg.as_bytes()

    parent, references = thread_headers(data)
    raw_lines = [f"Message-ID: {reply_message_id}"]
    if parent:
        raw_lines.append(f"In-Reply-To: {parent}")
    if references:
        # One msg-id per line: folding between msg-ids is legal (CFWS) and never needs encoding.
        raw_lines.append("References: " + "\r\n ".join(references))
    return ("\r\n".join(raw_lines) + "\r\n").encode("ascii") + generated


# ---------------------------------------------------------------------------------------------
# Texts


def _format_when(when: datetime, months: Sequence[str], at: str) -> str:
    return f"{when.day} {months[when.month - 1]} {when.year} {at} {when:%H:%M}"


class _Texts:
    """One language's wording. Kept in code (not templates) so the module stays pure and tested."""

    _ITEMS: ClassVar[dict[Item, str]]
    _DETAILS: ClassVar[dict[MissingDetail, str]]
    greeting: str
    closing: str
    template_intro: str
    template: str
    months: Sequence[str]
    at: str

    def body(self, kind: ReplyKind, data: ReplyData, now: datetime) -> str:
        parts = [self.greeting, *getattr(self, f"_{kind.value}")(data, now), self.closing]
        return "\n\n".join(parts) + "\n"

    def _missing_lines(self, data: ReplyData) -> str:
        """Exactly the missing items, each with why it did not count when there is more to say."""
        lines = []
        for item in data.missing:
            text = f"- {self._ITEMS[item]}"
            detail = data.missing_details.get(item)
            if detail in self._DETAILS:
                text += f" ({self._DETAILS[detail]})"
            lines.append(text)
        return "\n".join(lines)


class _Dutch(_Texts):
    greeting = "Beste collega,"
    closing = (
        "Met vriendelijke groet,\n"
        "Supportteam Forus\n\n"
        "Dit bericht is automatisch verstuurd. Bij vragen of onduidelijkheden kun je contact "
        "opnemen met het supportteam van Forus via de bekende servicekanalen."
    )
    template_intro = (
        "Je kunt het blok hieronder kopiëren, invullen en bovenaan je antwoord zetten. Let op: "
        "tekst die je in het geciteerde bericht typt, kunnen we niet gebruiken."
    )
    template = (
        "E-mailadres account:\n"
        "Identiteit gecontroleerd (ja/nee):\n"
        "Opdracht tot reset (ja/nee):\n"
        "Dossier-, zaak- of klantnummer (optioneel):"
    )
    months = _MONTHS_NL
    at = "om"

    _ITEMS: ClassVar[dict[Item, str]] = {
        Item.ACCOUNT_EMAIL: "het e-mailadres van het Forus-account waarop 2FA moet worden hersteld",
        Item.IDENTITY_VERIFIED: "een bevestiging dat de identiteit van de inwoner is gecontroleerd",
        Item.RESET_INSTRUCTED: "een bevestiging dat de gemeente opdracht geeft om 2FA te resetten",
    }
    _DETAILS: ClassVar[dict[MissingDetail, str]] = {
        MissingDetail.AMBIGUOUS: (
            "we vonden meer dan één e-mailadres in je bericht en weten niet welk adres bij het "
            'account hoort; noem het adres na "E-mailadres account:"'
        ),
        MissingDetail.INVALID: "het genoemde adres is geen geldig e-mailadres",
        MissingDetail.NEGATED: "je bericht zegt dat dit (nog) niet zo is",
        MissingDetail.CONDITIONAL: (
            "je schrijft dat dit nog gaat gebeuren; we hebben de bevestiging nodig dat het al "
            "gebeurd is"
        ),
        MissingDetail.QUESTION: "je bericht stelt hierover een vraag, maar bevestigt het niet",
        MissingDetail.TEMPLATE_NO: 'in je bericht staat hier "nee"',
    }
    _FAILURES: ClassVar[dict[str, str]] = {
        "account_not_found": "Er is op Forus geen account gevonden met het e-mailadres {account}.",
        "two_factor_not_enabled": (
            "Op het account {account} staat geen twee-factor authenticatie ingesteld. Er was dus "
            "niets te herstellen; de inwoner kan gewoon inloggen."
        ),
        "ambiguous_account": (
            "Er horen meerdere accounts bij het e-mailadres {account}, zodat we niet zeker weten "
            "welk account bedoeld is."
        ),
    }

    def _incomplete(self, data: ReplyData, now: datetime) -> list[str]:
        lines = self._missing_lines(data)
        return [
            "Bedankt voor je verzoek om de twee-factor authenticatie (2FA) van een inwoner te "
            "herstellen. Om het verzoek veilig te kunnen uitvoeren, missen we nog:",
            lines,
            "We hebben de 2FA daarom nog niet gereset. Stuur de ontbrekende gegevens als antwoord "
            "op deze e-mail, vanaf hetzelfde e-mailadres; dan pakken we het verzoek direct weer "
            "op.",
            self.template_intro,
            self.template,
        ]

    def _confirmation(self, data: ReplyData, now: datetime) -> list[str]:
        when = data.executed_at.astimezone(now.tzinfo) if data.executed_at else now
        facts = [f"E-mailadres account: {data.account_email or '(onbekend)'}"]
        if data.case_reference:
            facts.append(f"Dossier-, zaak- of klantnummer: {data.case_reference}")
        facts.append(f"Uitgevoerd op: {_format_when(when, self.months, self.at)}")
        return [
            "De twee-factor authenticatie (2FA) van het onderstaande account is hersteld.",
            "\n".join(facts),
            "Je kunt de inwoner nu informeren. De inwoner kan opnieuw inloggen en daarna een "
            "nieuwe 2FA instellen.",
        ]

    def _rejected_group(self, data: ReplyData, now: datetime) -> list[str]:
        return [
            f"We hebben je verzoek om 2FA te herstellen ontvangen vanaf {data.recipient}. Dit is "
            "een groeps-e-mailadres, en daarom kunnen we het verzoek niet uitvoeren.",
            "Forus mag een 2FA-reset alleen uitvoeren als een individuele gemeentelijke "
            "contactpersoon dit schriftelijk bevestigt, vanaf een officieel gemeentelijk "
            "e-mailadres op eigen naam (geen groeps-e-mailadres). Zo voorkomen we misbruik en "
            "identiteitsfraude.",
            "Wil je het verzoek opnieuw sturen vanaf je eigen gemeentelijke e-mailadres? "
            "Vermeld daarin de gegevens hieronder.",
            self.template,
        ]

    def _sender_not_registered(self, data: ReplyData, now: datetime) -> list[str]:
        gemeente = f"gemeente {data.municipality}" if data.municipality else "je gemeente"
        return [
            f"We hebben je verzoek om 2FA te herstellen ontvangen vanaf {data.recipient}. Dit "
            f"adres staat bij ons niet geregistreerd als contactpersoon voor 2FA-herstel namens "
            f"{gemeente}, en daarom kunnen we het verzoek niet uitvoeren.",
            "Vraag een geregistreerde contactpersoon van je gemeente om het verzoek te sturen. "
            "Moet je zelf als contactpersoon worden toegevoegd, laat de gemeente dit dan aan ons "
            "doorgeven via de bekende servicekanalen.",
        ]

    def _failed(self, data: ReplyData, now: datetime) -> list[str]:
        account = data.account_email or "(onbekend)"
        template = self._FAILURES.get(data.failure_code or "")
        reason = (
            template.format(account=account)
            if template
            else "Er ging iets mis bij het uitvoeren. Ons supportteam kijkt ernaar en neemt zo "
            "nodig contact met je op."
        )
        lines = [
            f"We hebben je verzoek om de 2FA van het account {account} te herstellen ontvangen, "
            "maar konden de reset niet uitvoeren.",
            reason,
        ]
        if data.case_reference:
            lines.append(f"Dossier-, zaak- of klantnummer: {data.case_reference}")
        lines.append(
            "Controleer het e-mailadres bij de inwoner. Klopt er iets niet, stuur dan een nieuw "
            "verzoek met het juiste e-mailadres."
            if data.failure_code == "account_not_found"
            else "Er is niets aan het account veranderd."
        )
        return lines

    def _denied(self, data: ReplyData, now: datetime) -> list[str]:
        account = data.account_email or "(onbekend)"
        lines = [
            f"Je verzoek om de 2FA van het account {account} te herstellen is door een tweede "
            "medewerker van Forus beoordeeld en niet uitgevoerd.",
            f"Reden: {data.denial_reason or '(geen reden opgegeven)'}",
        ]
        if data.case_reference:
            lines.append(f"Dossier-, zaak- of klantnummer: {data.case_reference}")
        lines.append("Er is niets aan het account veranderd.")
        return lines


class _English(_Texts):
    greeting = "Dear colleague,"
    closing = (
        "Kind regards,\n"
        "Forus support team\n\n"
        "This message was sent automatically. If you have questions, please contact the Forus "
        "support team through the usual service channels."
    )
    template_intro = (
        "You can copy the block below, fill it in and put it at the top of your reply. Please "
        "note: text typed inside the quoted message cannot be used."
    )
    template = _Dutch.template  # the labels of the help article, which is in Dutch
    months = _MONTHS_EN
    at = "at"

    _ITEMS: ClassVar[dict[Item, str]] = {
        Item.ACCOUNT_EMAIL: "the e-mail address of the resident's Forus account",
        Item.IDENTITY_VERIFIED: "a confirmation that the resident's identity has been verified",
        Item.RESET_INSTRUCTED: "a confirmation that the municipality instructs the 2FA reset",
    }
    _DETAILS: ClassVar[dict[MissingDetail, str]] = {
        MissingDetail.AMBIGUOUS: (
            "we found more than one e-mail address in your message and cannot tell which one "
            'belongs to the account; put it after "E-mailadres account:"'
        ),
        MissingDetail.INVALID: "the address given is not a valid e-mail address",
        MissingDetail.NEGATED: "your message says this is not (yet) the case",
        MissingDetail.CONDITIONAL: (
            "you write that this will happen; we need confirmation that it has happened"
        ),
        MissingDetail.QUESTION: "your message asks about this but does not confirm it",
        MissingDetail.TEMPLATE_NO: 'your message says "nee" here',
    }
    _FAILURES: ClassVar[dict[str, str]] = {
        "account_not_found": "There is no Forus account with the e-mail address {account}.",
        "two_factor_not_enabled": (
            "The account {account} does not have two-factor authentication enabled, so there "
            "was nothing to reset; the resident can simply log in."
        ),
        "ambiguous_account": (
            "More than one account uses the e-mail address {account}, so we cannot be sure "
            "which account is meant."
        ),
    }

    def _incomplete(self, data: ReplyData, now: datetime) -> list[str]:
        lines = self._missing_lines(data)
        return [
            "Thank you for your request to reset a resident's two-factor authentication (2FA). "
            "To carry it out safely, we still need:",
            lines,
            "We have therefore not reset the 2FA yet. Please reply to this e-mail with the "
            "missing details, from the same address, and we will pick the request up again.",
            self.template_intro,
            self.template,
        ]

    def _confirmation(self, data: ReplyData, now: datetime) -> list[str]:
        when = data.executed_at.astimezone(now.tzinfo) if data.executed_at else now
        facts = [f"Account e-mail address: {data.account_email or '(unknown)'}"]
        if data.case_reference:
            facts.append(f"Case reference: {data.case_reference}")
        facts.append(f"Carried out: {_format_when(when, self.months, self.at)}")
        return [
            "The two-factor authentication (2FA) of the account below has been reset.",
            "\n".join(facts),
            "You can now inform the resident. The resident can log in again and then set up a "
            "new 2FA.",
        ]

    def _rejected_group(self, data: ReplyData, now: datetime) -> list[str]:
        return [
            f"We received your request to reset 2FA from {data.recipient}. This is a group "
            "mailbox, so we cannot carry out the request.",
            "Forus may only reset 2FA when an individual municipal contact person confirms it in "
            "writing, from an official municipal address in their own name (not a group "
            "mailbox). This prevents misuse and identity fraud.",
            "Please send the request again from your own municipal e-mail address, with the "
            "details below.",
            self.template,
        ]

    def _sender_not_registered(self, data: ReplyData, now: datetime) -> list[str]:
        who = "your municipality"
        if data.municipality:
            who = f"the municipality of {data.municipality}"
        return [
            f"We received your request to reset 2FA from {data.recipient}. This address is not "
            f"registered with us as a contact person for 2FA resets on behalf of {who}, so we "
            "cannot carry out the request.",
            "Please ask a registered contact person of your municipality to send the request. "
            "If you should be added as a contact person, the municipality can let us know "
            "through the usual service channels.",
        ]

    def _failed(self, data: ReplyData, now: datetime) -> list[str]:
        account = data.account_email or "(unknown)"
        template = self._FAILURES.get(data.failure_code or "")
        reason = (
            template.format(account=account)
            if template
            else "Something went wrong while carrying it out. Our support team is looking "
            "into it and will contact you if needed."
        )
        lines = [
            f"We received your request to reset the 2FA of the account {account}, but could "
            "not carry it out.",
            reason,
        ]
        if data.case_reference:
            lines.append(f"Case reference: {data.case_reference}")
        lines.append(
            "Please check the e-mail address with the resident and send a new request with the "
            "correct address if needed."
            if data.failure_code == "account_not_found"
            else "Nothing about the account has changed."
        )
        return lines

    def _denied(self, data: ReplyData, now: datetime) -> list[str]:
        account = data.account_email or "(unknown)"
        lines = [
            f"Your request to reset the 2FA of the account {account} was reviewed by a second "
            "Forus employee and was not carried out.",
            f"Reason: {data.denial_reason or '(no reason given)'}",
        ]
        if data.case_reference:
            lines.append(f"Case reference: {data.case_reference}")
        lines.append("Nothing about the account has changed.")
        return lines


_TEXTS: dict[str, _Texts] = {"nl": _Dutch(), "en": _English()}
