"""guess_language / message_language: Dutch by default, English when the request was English."""

from __future__ import annotations

from pathlib import Path

import pytest

from reset_mailbot.domain.language import guess_language, message_language
from reset_mailbot.domain.message import parse_message
from reset_mailbot.rules_loader import load_extraction_rules, packaged_rules_dir
from reset_mailbot_testing.dkim_signing import plain_message

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.mark.parametrize(
    "text",
    [
        "Beste Forus, de identiteit van de inwoner is gecontroleerd. Graag de 2FA resetten.",
        "E-mailadres account: a@b.nl\nIdentiteit gecontroleerd: ja\nOpdracht tot reset: ja",
        "Hoi, kunnen jullie de 2FA van piet@hotmail.com herstellen? Groet, Jan",
        "",  # unsure: Dutch
        "Please reset.",  # too little to tell: Dutch
        "2FA reset a@b.nl",
        "Dear Forus, graag de 2FA resetten voor de inwoner, identiteit is gecontroleerd.",
    ],
)
def test_dutch_or_unsure_is_dutch(text: str) -> None:
    assert guess_language(text) == "nl"


@pytest.mark.parametrize(
    "text",
    [
        "Dear Forus, could you please reset the 2FA of a@b.nl? We have verified the identity "
        "of the resident. Kind regards, Jane",
        "Hello, the resident's identity has been checked with a passport. The municipality "
        "hereby instructs the reset.",
        "Please reset 2FA for the account a@b.nl, identity verified.",
    ],
)
def test_english_is_english(text: str) -> None:
    assert guess_language(text) == "en"


def test_hostile_input_is_bounded_and_never_raises() -> None:
    assert guess_language("the " * 1_000_000) == "en"
    assert guess_language("\x00\ud800 ÿÿÿ " * 1000) == "nl"


RULES = load_extraction_rules(packaged_rules_dir())


def _language_of(body: str) -> str:
    return message_language(parse_message(plain_message(body=body)), RULES)


def test_quoted_dutch_history_does_not_count() -> None:
    body = (
        "Dear colleague, please find the details below. The identity of the resident has been "
        "verified and we instruct the reset.\r\n\r\nKind regards,\r\nJane Smith\r\n\r\n"
        "Van: Forus Support <support@forus.io>\r\nVerzonden: dinsdag 17 november 2026\r\n"
        "Onderwerp: Re: 2FA\r\n\r\nBeste collega, we missen nog het e-mailadres van het "
        "account. Je kunt het blok hieronder kopieren en invullen. Met vriendelijke groet, "
        "Supportteam Forus. Dit bericht is automatisch verstuurd.\r\n"
    )
    assert _language_of(body) == "en"


def test_english_disclaimer_under_dutch_request_does_not_count() -> None:
    body = (
        "Beste Forus,\r\n\r\nDe identiteit van de inwoner is gecontroleerd. Graag de 2FA van "
        "a@b.nl resetten.\r\n\r\nMet vriendelijke groet,\r\nJan de Vries\r\n\r\n"
        "DISCLAIMER: This e-mail and any attachments are confidential and intended solely for "
        "the use of the individual to whom they are addressed. Please notify the sender.\r\n"
    )
    assert _language_of(body) == "nl"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("115-en_passport_reset_please.eml", "en"),
        ("182-en_bottom_posted_reply.eml", "en"),  # bottom-posted below our quoted question
        ("001-utrecht_outlook_paspoort.eml", "nl"),
        ("009-eindhoven_template_table_ja.eml", "nl"),
    ],
)
def test_corpus_messages(name: str, expected: str) -> None:
    raw = (CORPUS / name).read_bytes()
    assert message_language(parse_message(raw), RULES) == expected
