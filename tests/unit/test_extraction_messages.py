"""Whole messages as mail clients write them: replies to our auto-reply, forwards, HTML-only."""

from __future__ import annotations

from email.message import EmailMessage

from reset_mailbot.domain.extraction import extract_request
from reset_mailbot.domain.message import parse_message
from reset_mailbot.domain.models import ResetRequest
from tests.unit.extraction_helpers import SENDER, SUPPORT, shipped_rules

OUR_REPLY_TEXT = (
    "Beste collega,\n\nBedankt voor je verzoek om de twee-factor authenticatie (2FA) van een "
    "inwoner te herstellen. Om het verzoek veilig te kunnen uitvoeren, missen we nog:\n"
    "- een bevestiging dat de identiteit van de inwoner is gecontroleerd\n\n"
    "E-mailadres account:\nIdentiteit gecontroleerd (ja/nee):\nOpdracht tot reset (ja/nee):\n"
    "Dossier-, zaak- of klantnummer (optioneel):\n\nMet vriendelijke groet,\nSupportteam Forus\n"
)


def _message(plain: str | None, html: str | None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Jan de Vries <{SENDER}>"
    msg["To"] = SUPPORT
    msg["Subject"] = "RE: Verzoek reset 2FA"
    if plain is not None:
        msg.set_content(plain)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    return msg.as_bytes()


def _extract(raw: bytes) -> ResetRequest:
    return extract_request(parse_message(raw), shipped_rules(), frozenset({SENDER, SUPPORT}))


def test_outlook_html_reply_to_our_auto_reply() -> None:
    quoted = "".join(f"<p>{line}</p>" for line in OUR_REPLY_TEXT.splitlines())
    html = (
        "<html><body><div class=WordSection1><p class=MsoNormal>Hoi,</p>"
        "<p class=MsoNormal>Identiteit gecontroleerd: ja, paspoort aan de balie.</p>"
        "<p class=MsoNormal>Groet, Jan</p></div>"
        '<div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>Van:</b> Forus Support'
        "<br><b>Verzonden:</b> woensdag 25 november 2026<br><b>Onderwerp:</b> RE: 2FA</div>"
        f"<div>{quoted}</div></body></html>"
    )
    request = _extract(_message(None, html))
    assert request.identity_verified
    assert not request.reset_instructed
    assert request.account_email is None


def test_gmail_reply_plain_and_html() -> None:
    quoted = "\n".join("> " + line for line in OUR_REPLY_TEXT.splitlines())
    plain = (
        "Opdracht tot reset: ja\nE-mailadres account: piet.jansen@hotmail.com\n\n"
        "Op wo 25 nov. 2026 om 10:02 schreef Forus Support <\nsupport@forus.test>:\n\n" + quoted
    )
    html = (
        '<div dir="ltr">Opdracht tot reset: ja<br>E-mailadres account: '
        '<a href="mailto:piet.jansen@hotmail.com">piet.jansen@hotmail.com</a></div><br>'
        '<div class="gmail_quote"><div class="gmail_attr">Op wo 25 nov. 2026 schreef Forus</div>'
        f"<blockquote class=gmail_quote>{OUR_REPLY_TEXT}</blockquote></div>"
    )
    for raw in (_message(plain, html), _message(None, html)):
        request = _extract(raw)
        assert request.reset_instructed
        assert not request.identity_verified
        assert request.account_email == "piet.jansen@hotmail.com"


def test_forwarded_resident_mail_does_not_count() -> None:
    plain = (
        "Graag de 2FA resetten voor onderstaande inwoner.\n\n"
        "Begin doorgestuurd bericht:\n\nVan: Piet Jansen <piet.jansen@hotmail.com>\n"
        "Datum: 24 november 2026 om 09:12:44 CET\nAan: info@utrecht.nl\nOnderwerp: 2FA\n\n"
        "Mijn identiteit is gecontroleerd aan de balie, mijn mail is piet.jansen@hotmail.com\n"
    )
    request = _extract(_message(plain, None))
    assert request.reset_instructed
    assert not request.identity_verified
    assert request.account_email is None


def test_iphone_reply_keeps_only_the_top() -> None:
    plain = (
        "Identiteit is gecontroleerd.\n\nVerzonden vanaf mijn iPhone\n\n"
        "> Op 25 nov. 2026 om 10:00 heeft Forus Support <support@forus.test> het volgende "
        "geschreven:\n>\n> Opdracht tot reset (ja/nee):\n"
    )
    request = _extract(_message(plain, None))
    assert request.identity_verified and not request.reset_instructed


def test_complete_english_html_only() -> None:
    html = (
        "<p>Dear Forus support,</p><p>Please reset the 2FA for the account "
        '<a href="mailto:lisa.dekker@live.nl">lisa.dekker@live.nl</a>.</p>'
        "<p>We have verified the resident's identity with a valid passport.</p>"
        "<p>Client number: 4451</p><p>Kind regards,<br>Ayse<br>"
        '<a href="mailto:a.yilmaz@nijmegen.nl">a.yilmaz@nijmegen.nl</a></p>'
    )
    request = _extract(_message(None, html))
    assert request.missing == []
    assert request.account_email == "lisa.dekker@live.nl"
    assert request.case_reference == "4451"
