"""Body selection and decoding (issue #3, item 1): charsets, QP, base64, HTML, attachments."""

from __future__ import annotations

import base64

import pytest

from reset_mailbot.domain.extraction import extract_request
from reset_mailbot.domain.extraction.body import body_text, decode_bytes
from reset_mailbot.domain.extraction.html_text import QUOTE_MARK, html_to_text
from reset_mailbot.domain.message import parse_message
from reset_mailbot.domain.models import ResetRequest
from tests.unit.extraction_helpers import SENDER, SUPPORT, shipped_rules

HEAD = (
    f"From: Jan de Vries <{SENDER}>\r\nTo: {SUPPORT}\r\nSubject: 2FA\r\n"
    "Message-ID: <x@utrecht.nl>\r\nMIME-Version: 1.0\r\n"
)
REQUEST = (
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "De identiteit is aan de balie gecontroleerd met een paspoort.\r\n"
    "Graag de 2FA resetten.\r\n"
)


def _extract(raw: bytes) -> ResetRequest:
    message = parse_message(raw)
    return extract_request(message, shipped_rules(), frozenset({SENDER, SUPPORT}))


def _body(raw: bytes) -> str:
    return body_text(parse_message(raw).message, shipped_rules().compiled.plain_stub).text


def test_windows_1252_mislabelled_as_latin1() -> None:
    text = "Mevrouw \x93Özt\xfcrk\x94 betaalde \x80 5,\x85 klaar.\r\n".encode("latin-1")
    raw = HEAD.encode() + b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n" + text
    assert "\u201cÖztürk\u201d betaalde \u20ac 5,\u2026" in _body(raw)


def test_undecodable_utf8_is_replaced_not_raised() -> None:
    raw = HEAD.encode() + b"Content-Type: text/plain; charset=utf-8\r\n\r\nabc \xff\xfe def\r\n"
    assert "abc" in _body(raw) and "def" in _body(raw)


def test_unknown_charset_falls_back() -> None:
    raw = HEAD.encode() + b"Content-Type: text/plain; charset=x-klingon\r\n\r\n" + REQUEST.encode()
    assert _extract(raw).account_email == "piet.jansen@hotmail.com"


def test_no_charset_with_8bit_windows_bytes() -> None:
    body = "De identiteit is gecontroleerd \u2013 paspoort.\r\n".encode("cp1252")
    raw = HEAD.encode() + b"Content-Type: text/plain\r\n\r\n" + body
    assert "\u2013 paspoort" in _body(raw)


def test_quoted_printable_soft_break_inside_address_and_word() -> None:
    body = (
        "E-mailadres account: piet.jansen@hot=\r\nmail.com\r\n"
        "De identiteit is aan de balie gecontro=\r\nleerd met een paspoort.\r\n"
        "Graag de 2FA resetten.\r\n"
    )
    raw = (
        HEAD + "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
    ).encode()
    request = _extract(raw)
    assert request.account_email == "piet.jansen@hotmail.com"
    assert request.identity_verified and request.reset_instructed


def test_base64_utf8() -> None:
    encoded = base64.encodebytes(("Beste Forus,\r\n" + REQUEST).encode("utf-8")).decode()
    raw = (
        HEAD + "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + encoded
    ).encode()
    request = _extract(raw)
    assert request.missing == []


OUTLOOK_TABLE = """<html><head><style>p.MsoNormal {margin:0}</style></head><body>
<div class=WordSection1><p class=MsoNormal>Beste Forus,<o:p></o:p></p>
<table class=MsoTableGrid border=1>
<tr><td><p class=MsoNormal>E-mailadres account<o:p></o:p></p></td>
<td><p class=MsoNormal><a href="mailto:fam.ozturk@outlook.com">fam.ozturk@outlook.com</a>
</p></td></tr>
<tr><td><p class=MsoNormal>Identiteit gecontroleerd</p></td><td><p class=MsoNormal>ja</p></td></tr>
<tr><td><p class=MsoNormal>Opdracht tot reset</p></td><td><p class=MsoNormal>Ja</p></td></tr>
<tr><td><p class=MsoNormal>Dossiernummer</p></td><td><p class=MsoNormal>2026-00871</p></td></tr>
</table>
<p class=MsoNormal>Met vriendelijke groet,</p><p class=MsoNormal>Marieke</p></div></body></html>"""


def test_html_only_outlook_table_template() -> None:
    raw = (HEAD + "Content-Type: text/html; charset=utf-8\r\n\r\n" + OUTLOOK_TABLE).encode()
    request = _extract(raw)
    assert request.account_email == "fam.ozturk@outlook.com"
    assert request.identity_verified and request.reset_instructed
    assert request.case_reference == "2026-00871"
    kinds = {e.item.value: e.kind for e in request.evidence}
    assert kinds["identity_verified"] == "template"


def test_html_table_row_is_one_line() -> None:
    text = html_to_text(OUTLOOK_TABLE)
    assert "Identiteit gecontroleerd\tja" in text.splitlines()


def test_html_mailto_target_kept_when_link_text_differs() -> None:
    html = '<p>Account: <a href="mailto:lisa@live.nl">deze inwoner</a></p>'
    assert "<mailto:lisa@live.nl>" in html_to_text(html)


def test_html_blockquote_and_gmail_quote_are_cut() -> None:
    html = (
        '<div dir="ltr">Graag de 2FA resetten.</div><div class="gmail_quote">'
        "<div>Op wo schreef Forus:</div><blockquote>Identiteit gecontroleerd: ja</blockquote></div>"
    )
    text = html_to_text(html)
    assert "Identiteit" not in text and QUOTE_MARK in text


def test_html_outlook_appendonsend_is_cut() -> None:
    html = (
        "<div>Zie hieronder.</div><div id=\"appendonsend\"></div><hr>"
        '<div id="divRplyFwdMsg"><b>Van:</b> Forus</div><div>Identiteit gecontroleerd: ja</div>'
    )
    assert "Identiteit" not in html_to_text(html)


def test_html_outlook_border_top_divider_is_cut() -> None:
    html = (
        "<p>Akkoord.</p><div style='border:none;border-top:solid #E1E1E1 1.0pt;"
        "padding:3.0pt 0cm 0cm 0cm'><p><b>Van:</b> Forus</p></div>"
        "<p>De identiteit is gecontroleerd.</p>"
    )
    assert "identiteit" not in html_to_text(html)


def test_plain_stub_uses_html() -> None:
    raw = (
        HEAD + 'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\r\n"
        "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<p>E-mailadres account: piet.jansen@hotmail.com</p>"
        "<p>De identiteit is gecontroleerd met een paspoort.</p><p>Graag de 2FA resetten.</p>\r\n"
        "--b--\r\n"
    ).encode()
    assert _extract(raw).missing == []


def test_attachments_and_attached_messages_are_never_read() -> None:
    raw = (
        HEAD + 'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        "--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZie bijlage.\r\n"
        "--m\r\nContent-Type: text/plain; name=verzoek.txt\r\n"
        "Content-Disposition: attachment; filename=verzoek.txt\r\n\r\n" + REQUEST +
        "--m\r\nContent-Type: message/rfc822\r\n\r\n" + HEAD +
        "Content-Type: text/plain\r\n\r\n" + REQUEST + "--m--\r\n"
    ).encode()
    request = _extract(raw)
    assert request.account_email is None
    assert not request.identity_verified and not request.reset_instructed


def test_decode_bytes_never_raises() -> None:
    for charset in (None, "", "utf-8", "latin-1", "bogus", "utf-16", '"utf-8"'):
        assert isinstance(decode_bytes(b"\xff\xfe\x00abc\x80", charset), str)


def test_broken_html_gives_text_or_nothing() -> None:
    assert html_to_text("<p>a<b>b<td>c</table></p><<<>>") != "x"
    assert html_to_text("") == ""
    assert "diep" in html_to_text("<div>" * 5000 + "diep" + "</div>" * 5000)


def test_format_flowed_is_unwrapped() -> None:
    body = (
        "De identiteit van de inwoner is vandaag aan de balie \r\n"
        "gecontroleerd met een geldig paspoort. Graag de 2FA \r\n"
        "resetten.\r\n-- \r\nJan\r\n"
    )
    raw = (HEAD + "Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n" + body).encode()
    text = _body(raw)
    assert "aan de balie gecontroleerd met" in text
    assert "-- " in text.splitlines()
    request = _extract(raw)
    assert request.identity_verified and request.reset_instructed


def test_html_new_outlook_reference_container_is_cut() -> None:
    html = (
        "<div>Akkoord.</div>"
        '<div id="mail-editor-reference-message-container"><div>Van: Forus</div>'
        "<div>Identiteit gecontroleerd: ja</div></div>"
    )
    assert "Identiteit" not in html_to_text(html)


@pytest.mark.parametrize("hidden", [
    '<p style="display:none">{}</p>', '<p style="DISPLAY: NONE;">{}</p>',
    '<span style="visibility:hidden">{}</span>', '<p style="mso-hide:all">{}</p>',
    '<span style="font-size:0px">{}</span>', '<span style="font-size:0">{}</span>',
    '<div style="opacity:0">{}</div>', '<p style="color:#ffffff">{}</p>',
    '<p style="color: white">{}</p>', '<font color="#FFFFFF">{}</font>', '<div hidden>{}</div>',
    '<div style="max-height:0;overflow:hidden">{}</div>',
])
def test_hidden_html_text_is_not_read(hidden: str) -> None:
    """Issue #12: what is read is what is shown."""
    claim = hidden.format("De identiteit is gecontroleerd.")
    markup = "<p>Beste Forus,</p>" + claim + "<p>Groet</p>"
    text = html_to_text(markup)
    assert "identiteit" not in text.lower()
    assert "Beste Forus" in text and "Groet" in text


def test_white_text_on_a_coloured_background_is_read() -> None:
    markup = '<p style="color:#fff;background-color:#003366">Identiteit gecontroleerd</p>'
    text = html_to_text(markup)
    assert "Identiteit gecontroleerd" in text


def _alternative(plain: str, html: str) -> bytes:
    return (
        "From: j.devries@utrecht.nl\r\nTo: support@forus.test\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        '--b\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\n' + plain + "\r\n"
        '--b\r\nContent-Type: text/html; charset="utf-8"\r\n\r\n' + html + "\r\n--b--\r\n"
    ).encode()


REQUEST_LINES = ("E-mailadres account: piet.jansen@hotmail.com\r\n"
                 "Wij geven hierbij opdracht om de 2FA te resetten.\r\n")


def test_an_item_counts_only_when_plain_and_html_both_give_it() -> None:
    """Issue #12: the HTML rendering says the identity was checked, the text/plain one does
    not (or the other way round): not confirmed."""
    claim = "De identiteit van de inwoner is aan de balie gecontroleerd."
    for plain, html in (
        (REQUEST_LINES, "<p>" + REQUEST_LINES.replace("\r\n", "</p><p>") + claim + "</p>"),
        (REQUEST_LINES + claim, "<p>" + REQUEST_LINES.replace("\r\n", "</p><p>") + "</p>"),
    ):
        message = parse_message(_alternative(plain, html))
        request = extract_request(message, shipped_rules(), frozenset({SENDER, SUPPORT}))
        assert not request.identity_verified
        assert request.reset_instructed
        assert request.account_email == "piet.jansen@hotmail.com"
    both = "<p>" + (REQUEST_LINES + claim).replace("\r\n", "</p><p>") + "</p>"
    message = parse_message(_alternative(REQUEST_LINES + claim, both))
    assert extract_request(message, shipped_rules(), frozenset({SENDER})).identity_verified


def test_tag_bomb_is_not_built_into_a_tree() -> None:
    """300 KB of <p> inside a <td> built 100,000 elements (50x its size in memory): read as
    nothing instead; ordinary Outlook markup (~40 bytes a tag) is read as before."""
    assert html_to_text("<table><tr><td>" + "<p>" * 100_000 + "</td></tr></table>") == ""
    rows = "".join(f'<p class="MsoNormal"><span style="font-size:11pt">Regel {i}</span></p>'
                   for i in range(3000))
    assert "Regel 2999" in html_to_text(rows)
