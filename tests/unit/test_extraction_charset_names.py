"""A hostile charset name never empties the body (issue #11, item 7).

`codecs.lookup` raises ValueError, not LookupError, for a name with a NUL in it; decode_bytes
caught only LookupError, so the exception reached body_text's last-resort handler and a valid
request was read as an empty body. RFC 2231 lets a sender write that NUL without a NUL byte
(`charset*=utf-8''utf-8%00`).
"""

from __future__ import annotations

import email
import email.policy

import pytest

from reset_mailbot.domain.extraction.body import body_text, decode_bytes
from tests.unit.extraction_helpers import SENDER, SUPPORT

REQUEST = (
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "De identiteit is aan de balie gecontroleerd met een paspoort.\r\n"
    "Graag de 2FA resetten.\r\n"
)


@pytest.mark.parametrize(
    "charset",
    [
        "utf-8\x00",
        "\x00",
        "utf\x00-8",
        "\ud800",  # a lone surrogate: UnicodeEncodeError, a ValueError too
        "x" * 10_000,
        "rot13",  # codecs that exist but are not text encodings
        "base64",
        "hex",
        "idna",
        "undefined",
    ],
)
def test_a_hostile_charset_name_decodes_as_utf8(charset: str) -> None:
    text = "Identiteit gecontroleerd: ja, cliënt toonde een paspoort"
    assert decode_bytes(text.encode(), charset) == text


@pytest.mark.parametrize(
    "content_type",
    [
        b"Content-Type: text/plain; charset*=utf-8''utf-8%00",
        b'Content-Type: text/plain; charset="utf-8\x00"',
    ],
    ids=["rfc2231-encoded-nul", "raw-nul"],
)
def test_a_nul_in_the_charset_keeps_the_body(content_type: bytes) -> None:
    raw = (
        f"From: Jan de Vries <{SENDER}>\r\nTo: {SUPPORT}\r\nSubject: 2FA\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode() + content_type + b"\r\n\r\n" + REQUEST.encode()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_charset() is not None
    assert "\x00" in message.get_content_charset()
    body = body_text(message, None)
    assert body.source == "plain"
    assert "De identiteit is aan de balie gecontroleerd" in body.text
