"""Whole-body probes written to the policy after the corpus run, to check that the rules still
generalise (each line: body text, identity, instruction, account, reference)."""

from __future__ import annotations

import pytest

from tests.unit.extraction_helpers import expected, extract

PROBES = [
    (
        "Beste Forus,\n\nMeneer Jansen (jansen.h@ziggo.nl) is vanochtend bij ons aan de balie "
        "geweest. Zijn rijbewijs is gecontroleerd en klopt.\nWilt u zijn 2FA resetten?\n\n"
        "Zaaknummer: Z/26/004411\n\nMet vriendelijke groet,\nAnne\n",
        True, True, "jansen.h@ziggo.nl", "Z/26/004411",
    ),
    (
        "Hallo,\n\nDe inwoner heeft haar ID nog niet laten zien. Wel graag alvast de 2FA resetten "
        "voor account: lotte.smit@gmail.com.\n\nGroet,\nPim\n",
        False, True, "lotte.smit@gmail.com", None,
    ),
    (
        "Goedemiddag,\n\nKunnen jullie de 2FA van b.yilmaz@hotmail.com resetten als hij morgen "
        "zijn paspoort heeft laten zien?\n",
        False, False, "b.yilmaz@hotmail.com", None,
    ),
    (
        "Hi,\n\nJust to let you know: the identity of the resident hasn't been checked. "
        "Please don't reset anything until we confirm.\nAccount: p.walsh@outlook.com\n",
        # "don't reset" names the reset: the instruction is negated, the identity judged on its
        # own (not checked), and the request is postponed, not withdrawn: the address stays
        False, False, "p.walsh@outlook.com", None,
    ),
    (
        "Dear Forus,\n\nWe have checked the resident's identity in the BRP and at the desk "
        "(passport). Could you please reset her two-factor authentication? Her account e-mail is "
        "nina.petrova@yandex.ru.\n\nCase number: 2026-0981\n",
        True, True, "nina.petrova@yandex.ru", "2026-0981",
    ),
    (
        "Hoi,\n\nHet oude adres van mevrouw is m.degroot@live.nl, het nieuwe adres is "
        "marjan.degroot@gmail.com. Identiteit is gecontroleerd, graag resetten.\n",
        True, True, None, None,
    ),
    (
        "Goedemorgen,\n\nIk weet niet zeker of de identiteit is gecontroleerd; mijn collega was "
        "aan de balie. Graag de 2FA resetten van s.vos@kpnmail.nl.\n",
        False, True, "s.vos@kpnmail.nl", None,
    ),
    (
        "Goedemorgen,\n\nVolgens mij heeft mijn collega de identiteit gecontroleerd.\n"
        "Graag de 2FA resetten van s.vos@kpnmail.nl.\n",
        False, True, "s.vos@kpnmail.nl", None,
    ),
    (
        "Hallo Forus,\n\nMag de 2FA van account r.bos@gmail.com gereset worden? De identiteit "
        "van meneer is gecontroleerd aan de balie.\n",
        True, False, "r.bos@gmail.com", None,
    ),
    (
        "Beste,\n\nIdentiteit gecontroleerd: ja\nOpdracht tot reset: ja\n"
        "E-mailadres account: fam.dekker@hetnet.nl\nKenmerk: n.v.t.\n\nMvg Sandra\n",
        True, True, "fam.dekker@hetnet.nl", None,
    ),
    (
        "Beste,\n\nZou u de tweestapsverificatie willen uitschakelen voor t.kok@gmail.com? "
        "Wij hebben haar identiteitsbewijs gecontroleerd. BSN 111222333.\n",
        True, True, "t.kok@gmail.com", None,
    ),
    (
        "Hallo,\n\nWe hebben de identiteit gecontroleerd maar mevrouw wil de 2FA zelf opnieuw "
        "instellen, dus niets resetten graag. Account: a.mol@gmail.com\n",
        True, False, "a.mol@gmail.com", None,
    ),
]


@pytest.mark.parametrize(("text", "identity", "instruction", "account", "reference"), PROBES)
def test_probe(
    text: str, identity: bool, instruction: bool, account: str | None, reference: str | None
) -> None:
    request = extract(text)
    assert request.identity_verified is expected(text, identity, "identity_verified")
    assert request.reset_instructed is expected(text, instruction, "reset_instructed")
    assert request.account_email == account
    assert request.case_reference == reference


@pytest.mark.parametrize(
    "text",
    [
        "Niemand heeft de identiteit gecontroleerd.",
        "Nobody has verified her identity.",
        "De identiteit is gecontroleerd door de inwoner zelf via de app.",
        "The ID was checked by the bank.",
        "De identiteit is slechts deels gecontroleerd.",
        "Het paspoort is gecontroleerd, maar bleek verlopen.",
        "Her identity was verified last year, but not today.",
        "Ik heb gecontroleerd of het paspoort geldig is.",
        "Identiteit: gecontroleerd via BRP (adres klopt niet)",
        "ID gezien: nee",
    ],
)
def test_identity_traps(text: str) -> None:
    assert not extract(text).identity_verified, text


@pytest.mark.parametrize(
    "text",
    [
        "Graag geen reset.",
        "Toestemming voor de reset wordt nog gevraagd aan de teamleider.",
        "Reset mag pas na akkoord van de teamleider.",
        "Is het goed als ik de opdracht voor de reset morgen stuur?",
        "De opdracht tot reset volgt nog.",
        "Het verzoek om de 2FA te resetten komt van de inwoner zelf.",
        "Graag een reactie of de reset mogelijk is.",
        "Wij overwegen de 2FA te laten resetten.",
        "Please advise whether we should request a reset.",
        "Permission for the reset is still pending.",
        "We are considering asking you to reset the 2FA.",
    ],
)
def test_instruction_traps(text: str) -> None:
    assert not extract(text).reset_instructed, text


@pytest.mark.parametrize(
    "text",
    [
        "Ik heb de identiteit van mevrouw gecontroleerd aan de hand van haar paspoort.",
        "Het ID-bewijs van meneer is door ons gecontroleerd.",
        "Ik heb de inwoner vandaag gesproken en zijn paspoort bekeken.",
        "We controleerden het paspoort aan de balie.",
        "Identiteit: akkoord",
        "Meneer heeft een geldig legitimatiebewijs overlegd.",
        "Passport seen and checked.",
    ],
)
def test_identity_recall(text: str) -> None:
    assert extract(text).identity_verified is expected(text, True, "identity_verified"), text


@pytest.mark.parametrize(
    "text",
    [
        "Graag zouden wij de 2FA laten resetten.",
        "Het verzoek is: reset de 2FA van dit account.",
        "I'm writing to ask you to reset the two-factor authentication.",
        "Hierbij vraag ik u de 2FA te resetten.",
        "Wil je de 2FA even resetten?",
        "Reset graag de 2FA van dit account.",
        "Wilt u zo vriendelijk zijn de 2FA te resetten?",
        "Kan de 2FA gereset worden?",
    ],
)
def test_instruction_recall(text: str) -> None:
    assert extract(text).reset_instructed is expected(text, True, "reset_instructed"), text


@pytest.mark.parametrize(
    "text",
    [
        "Graag horen we hoe we de 2FA kunnen laten herstellen.",
        "We would like to know how to request a reset.",
    ],
)
def test_wanting_to_know_is_no_instruction(text: str) -> None:
    assert not extract(text).reset_instructed, text


@pytest.mark.parametrize(
    "text",
    [
        "Het paspoort is gecontroleerd door de politie en bleek vals.",
        "Mevrouw heeft haar paspoort laten zien, maar het was een kopie.",
        "We checked a scan of her passport.",
        "Her ID was checked and turned out to be false.",
    ],
)
def test_false_or_copied_documents_confirm_nothing(text: str) -> None:
    assert not extract(text).identity_verified, text
