"""Test helper (not a test module): the attack classes of issue #11 as messages.

Every case starts from a genuinely signed message of a municipal employee - a reply to the
attacker that quotes, Outlook-style without "> " markers, text the attacker planted - and then
changes only what an attacker can change: header lines added, repeated, folded or reordered
outside the signature, bytes anywhere the signature does not cover. Each case says what the
decision must be. Used with an in-memory key lookup (tests/unit/test_signed_view_attacks.py)
and over the real DNS test server (tests/integration/test_signed_view_dns.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reset_mailbot.domain.reasons import Outcome, ReasonCode
from reset_mailbot_testing.dkim_signing import (
    CRLF,
    Signer,
    _assemble,
    _date,
    message_id,
    rsa_key,
    signature_header,
)

EMPLOYEE = "Jan de Vries <j.devries@utrecht.nl>"
#: what Microsoft 365 signs, whatever the message (research notes in docs/dkim-signed-headers.md)
M365_HEADERS = ("From", "Date", "Subject", "Message-ID", "Content-Type", "MIME-Version",
                "X-MS-Exchange-SenderADCheck")
FULL_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version",
                "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References")

PLANTED = (
    "--PLANTED\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "E-mailadres account: victim.account@hotmail.com\r\n"
    "Identiteit gecontroleerd: ja\r\n"
    "Gemeente geeft opdracht tot reset: ja\r\n"
    "--PLANTED--\r\n"
)

REPLY_TO_ATTACKER = (
    "Beste meneer,\r\n"
    "\r\n"
    "Voor het herstellen van uw inlogcode kunt u het beste zelf contact opnemen met Forus.\r\n"
    "\r\n"
    "Met vriendelijke groet,\r\n"
    "Jan de Vries\r\n"
    "Gemeente Utrecht\r\n"
    "\r\n"
    "Van: Kees Kwaad <kees.kwaad@gmail.com>\r\n"
    "Verzonden: maandag 7 december 2026 09:12\r\n"
    "Aan: Vries, Jan de <j.devries@utrecht.nl>\r\n"
    "Onderwerp: vraag\r\n"
    "\r\n"
    + PLANTED
)

TWO_ADDRESSES = (
    "Beste Forus,\r\n"
    "\r\n"
    "De inwoner gebruikte oud.adres@hotmail.com en gebruikt nu nieuw.adres@gmail.com.\r\n"
    "De identiteit van de inwoner is aan de balie gecontroleerd met haar paspoort.\r\n"
    "Wij verzoeken jullie de 2FA te resetten.\r\n"
    "\r\n"
    "Met vriendelijke groet,\r\n"
    "Jan de Vries\r\n"
)

COMPLETE = (
    "Beste Forus,\r\n"
    "\r\n"
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "De identiteit van de inwoner is aan de balie gecontroleerd met zijn paspoort.\r\n"
    "Wij geven hierbij opdracht om de 2FA te resetten.\r\n"
    "\r\n"
    "Met vriendelijke groet,\r\n"
    "Jan de Vries\r\n"
)


@dataclass
class Expect:
    outcome: Outcome
    reasons: tuple[ReasonCode, ...] = ()
    reply: bool | None = None
    account: str | None = None
    check: Callable[[object], None] | None = None


@dataclass
class Case:
    name: str
    raw: bytes
    zone: dict[str, str]
    expect: Expect
    notes: str = ""
    extra: dict[str, bytes] = field(default_factory=dict)


def _message(body: str, *, content_type: str | None = 'text/plain; charset="utf-8"',
             cte: str | None = "8bit", extra: tuple[tuple[str, str], ...] = (),
             date: float | None = None, msgid: str | None = None,
             from_: str = EMPLOYEE) -> bytes:
    headers = [("From", from_), ("To", "Kees Kwaad <kees.kwaad@gmail.com>"),
               ("Subject", "RE: vraag"), ("Date", _date(date)),
               ("Message-ID", msgid or message_id()), *extra, ("MIME-Version", "1.0")]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if cte is not None:
        headers.append(("Content-Transfer-Encoding", cte))
    return _assemble(headers, body.encode("utf-8"))


def _signed(signer: Signer, raw: bytes, headers: tuple[str, ...] = M365_HEADERS,
            **kw: object) -> bytes:
    key = rsa_key(2048)
    signer.publish(key, "utrecht.nl")
    return signature_header(raw, key, "utrecht.nl", include_headers=[h.lower() for h in headers],
                            **kw) + raw  # type: ignore[arg-type]


def _prepend(raw: bytes, *lines: bytes) -> bytes:
    return b"".join(line + CRLF for line in lines) + raw


def _insert_after_signature(raw: bytes, *lines: bytes) -> bytes:
    """Add header lines below the DKIM-Signature field (where an attacker's MTA would)."""
    head, sep, body = raw.partition(CRLF + CRLF)
    return head + CRLF + CRLF.join(lines) + sep + body


def cases() -> list[Case]:
    s = Signer()
    out: list[Case] = []
    genuine = _signed(s, _message(REPLY_TO_ATTACKER))
    out.append(Case("genuine_reply_control", genuine, s.zone,
                    Expect(Outcome.INCOMPLETE, reply=True)))
    out.append(Case("repeated_content_type_multipart",
                    _prepend(genuine, b"Content-Type: multipart/mixed; boundary=PLANTED"),
                    s.zone, Expect(Outcome.REJECTED, (ReasonCode.REPEATED_HEADER,), False)))
    out.append(Case("repeated_content_type_html",
                    _prepend(genuine, b"Content-Type: text/html"),
                    s.zone, Expect(Outcome.REJECTED, (ReasonCode.REPEATED_HEADER,), False)))
    out.append(Case("repeated_content_type_below",
                    _insert_after_signature(genuine, b"Content-Type: multipart/mixed;",
                                            b"\tboundary=PLANTED"),
                    s.zone, Expect(Outcome.REJECTED, (ReasonCode.REPEATED_HEADER,), False)))
    for name in ("To", "Cc", "Message-ID", "Subject", "In-Reply-To", "MIME-Version",
                 "Content-Transfer-Encoding"):
        value = {"To": "support@forus.test", "Cc": "x@y.nl", "Subject": "x",
                 "Message-ID": "<fresh@x>", "In-Reply-To": "<a@b>",
                 "MIME-Version": "1.0", "Content-Transfer-Encoding": "base64"}[name]
        raw = _prepend(genuine, f"{name}: {value}".encode())
        if name in ("Cc", "In-Reply-To"):  # absent from the genuine message: now twice
            raw = _prepend(raw, f"{name}: {value}".encode())
        out.append(Case(f"repeated_{name.lower()}", raw, s.zone,
                        Expect(Outcome.REJECTED, (ReasonCode.REPEATED_HEADER,), False)))

    no_structure = _signed(s, _message(REPLY_TO_ATTACKER, content_type=None, cte=None),
                           headers=("From", "Date", "Subject", "Message-ID"))
    out.append(Case("added_content_type_unsigned",
                    _prepend(no_structure, b"Content-Type: multipart/mixed; boundary=PLANTED"),
                    s.zone, Expect(Outcome.INCOMPLETE, (ReasonCode.BODY_NOT_SIGNED,), True)))
    out.append(Case("added_cte_unsigned",
                    _prepend(no_structure, b"Content-Transfer-Encoding: quoted-printable"),
                    s.zone, Expect(Outcome.INCOMPLETE, (ReasonCode.BODY_NOT_SIGNED,), True)))
    oversigned = _signed(s, _message(REPLY_TO_ATTACKER, content_type=None, cte=None),
                         headers=("From", "Date", "Subject", "Message-ID", "Content-Type"))
    out.append(Case("added_content_type_oversigned",
                    _prepend(oversigned, b"Content-Type: multipart/mixed; boundary=PLANTED"),
                    s.zone, Expect(Outcome.REJECTED, (ReasonCode.DKIM_INVALID,), False)))

    out.append(Case("bare_cr_relabels_from",
                    _prepend(genuine, b"X-Info: x\rFrom: A.deVries@eindhoven.nl"),
                    s.zone, Expect(Outcome.REJECTED, (ReasonCode.MALFORMED_MESSAGE,), False)))
    out.append(Case("bare_cr_hides_auto_submitted",
                    _prepend(genuine, b"X-Info: x\rAuto-Submitted: auto-replied"),
                    s.zone, Expect(Outcome.REJECTED, (ReasonCode.MALFORMED_MESSAGE,), False)))
    out.append(Case("bare_lf_in_header",
                    _prepend(genuine, b"X-Info: x\nContent-Type: text/html"),
                    s.zone, Expect(Outcome.REJECTED, (ReasonCode.MALFORMED_MESSAGE,), False)))

    two = _signed(s, _message(TWO_ADDRESSES))
    out.append(Case("two_candidates_control", two, s.zone,
                    Expect(Outcome.INCOMPLETE, (ReasonCode.AMBIGUOUS_ACCOUNT_EMAIL,), True)))
    out.append(Case("unsigned_cc_knocks_out_candidate",
                    _prepend(two, b"Cc: oud.adres@hotmail.com"), s.zone,
                    Expect(Outcome.INCOMPLETE, (ReasonCode.AMBIGUOUS_ACCOUNT_EMAIL,), True)))
    cc_signed = _signed(s, _message(TWO_ADDRESSES, extra=(("Cc", "oud.adres@hotmail.com"),)),
                        headers=FULL_HEADERS)
    out.append(Case("signed_cc_excludes_candidate", cc_signed, s.zone,
                    Expect(Outcome.COMPLETE, account="nieuw.adres@gmail.com", reply=True)))

    folded_from = _signed(s, _message(
        COMPLETE, from_="=?utf-8?q?Vries=2C_Jan_de_=E2=80=93_Werk_en_Inkomen_Gemeente_Utrecht?=\r\n"
                        "\t<j.devries@utrecht.nl>"))
    out.append(Case("folded_from_outlook", folded_from, s.zone,
                    Expect(Outcome.COMPLETE, account="piet.jansen@hotmail.com", reply=True)))
    no_account = COMPLETE.replace("E-mailadres account: piet.jansen@hotmail.com\r\n", "") + (
        "Mijn collega anna.collega@partner-org.nl staat in cc.\r\n")
    folded_cc = _signed(s, _message(
        no_account,
        extra=(("Cc", "Collega, Anna\r\n\t<anna.collega@partner-org.nl>, B <b@utrecht.nl>"),)),
        headers=FULL_HEADERS)
    out.append(Case("folded_cc_is_read", folded_cc, s.zone,
                    Expect(Outcome.INCOMPLETE, reply=True)))
    for name, from_ in (("null_sender", "<>"), ("mailer_daemon_null", "MAILER-DAEMON <>"),
                        ("postmaster_bare", "postmaster")):
        raw = _message("Delivery failed.\r\n", from_=from_)
        out.append(Case(f"bounce_{name}", raw, s.zone,
                        Expect(Outcome.IGNORED, (ReasonCode.BOUNCE,), False)))

    old = time.time() - 20 * 86_400
    stale = _signed(s, _message(COMPLETE, date=old), timestamp=int(old))
    out.append(Case("replayed_old_request", stale, s.zone,
                    Expect(Outcome.INCOMPLETE, (ReasonCode.REQUEST_TOO_OLD,), True)))
    fresh = _signed(s, _message(COMPLETE))
    out.append(Case("fresh_request_control", fresh, s.zone,
                    Expect(Outcome.COMPLETE, account="piet.jansen@hotmail.com", reply=True)))
    return out


def replay_pair() -> tuple[bytes, bytes, dict[str, str]]:
    """A genuine complete request whose Message-ID is not signed, and the same signed message
    with the Message-ID changed (and the field order shuffled): one request, not two."""
    s = Signer()
    first = _signed(s, _message(COMPLETE), headers=("From", "Date", "Subject", "Content-Type",
                                                     "MIME-Version"))
    second = first.replace(b"Message-ID: <", b"Message-ID: <X")
    assert second != first
    return first, second, s.zone
