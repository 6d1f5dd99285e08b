"""identity_verified and reset_instructed, per sentence, in Dutch and English (issue #3, item 3).

Precision is the bar: every sentence in the REFUSED lists must leave the item missing. A false
"identity verified" is an account takeover.
"""

from __future__ import annotations

import pytest

from reset_mailbot.domain.reasons import Item, MissingDetail
from tests.unit.extraction_helpers import expected, extract

#: what the allowlist reader says instead of the old reader's negated/conditional/question
ALLOWLIST_DETAILS = {MissingDetail.UNEXPLAINED, MissingDetail.CONTRADICTED,
                     MissingDetail.RETRACTED, MissingDetail.TEMPLATE_NO}

IDENTITY_CONFIRMED = [
    "De identiteit van de inwoner is vandaag aan de balie gecontroleerd met een geldig paspoort.",
    "Wij hebben de identiteit gecontroleerd.",
    "Identiteit is geverifieerd aan de hand van het rijbewijs.",
    "De inwoner heeft zich aan de balie gelegitimeerd met haar ID-kaart.",
    "Mevrouw is vanochtend aan de balie geïdentificeerd.",
    "Het paspoort van meneer is door mij gezien en gecontroleerd.",
    "Legitimatiebewijs gecheckt bij de balie.",
    "De identiteit hebben we vastgesteld in de BRP.",
    "Identiteit gecontroleert via het paspoort",  # typo
    "We hebben haar verblijfsdocument gecontroleerd; alles klopt.",
    "De identiteit is gecontroleerd, ze kan niet meer inloggen sinds ze een nieuwe telefoon heeft.",
    "We have verified the resident's identity in person with a valid ID card.",
    "The identity of the resident was checked at our service desk.",
    "Passport checked at the counter this morning.",
    "She identified herself with her driving licence.",
    "We checked his ID.",
]

IDENTITY_REFUSED = [
    ("Let op: de identiteit is nog niet gecontroleerd.", MissingDetail.NEGATED),
    ("De identiteit is niet gecontroleerd.", MissingDetail.NEGATED),
    ("Wij hebben geen paspoort, ID-kaart of rijbewijs gezien.", MissingDetail.NEGATED),
    ("Er is geen identiteitsbewijs gecontroleerd.", MissingDetail.NEGATED),
    ("Zodra de identiteit is gecontroleerd, laten we het weten.", MissingDetail.CONDITIONAL),
    ("Als de identiteit gecontroleerd is, mag de 2FA worden gereset.", MissingDetail.CONDITIONAL),
    ("Nadat de identiteit is gecontroleerd zal ik het laten weten.", MissingDetail.CONDITIONAL),
    ("We zullen de identiteit morgen aan de balie controleren en geverifieerd doorgeven.", None),
    ("We gaan de identiteit volgende week gecontroleerd hebben.", MissingDetail.CONDITIONAL),
    ("De identiteit wordt morgen aan de balie gecontroleerd.", MissingDetail.CONDITIONAL),
    ("Moeten wij de identiteit controleren?", None),
    ("Is de identiteit gecontroleerd?", MissingDetail.QUESTION),
    ("Moet de identiteit eerst gecontroleerd worden?", MissingDetail.QUESTION),
    ("De identiteit moet nog gecontroleerd worden.", MissingDetail.CONDITIONAL),
    ("Volgens mevrouw is haar identiteit al eerder gecontroleerd.", MissingDetail.CONDITIONAL),
    ("Het paspoort was verlopen, dus de identiteit is gecontroleerd met twijfel.", None),
    ("Bevestiging dat de identiteit van de inwoner is gecontroleerd", None),
    ("Controleer dan altijd de identiteit van de afzender via 14 024.", None),
    ("Wij kunnen de identiteit niet vaststellen.", None),
    ("The identity has not been verified yet.", MissingDetail.NEGATED),
    ("We did not check her ID.", None),
    ("Once the identity is verified we will let you know.", MissingDetail.CONDITIONAL),
    ("We will verify the identity tomorrow.", None),
    ("Has the identity been verified?", MissingDetail.QUESTION),
    ("The passport still needs to be checked.", MissingDetail.CONDITIONAL),
    ("If the ID is checked, please reset.", MissingDetail.CONDITIONAL),
    ("Identity verification is pending.", None),
]

INSTRUCTION_CONFIRMED = [
    "Hierbij geeft de gemeente Utrecht opdracht om de twee-factor authenticatie te resetten.",
    "Graag alvast de 2FA resetten voor dit account, hierbij onze opdracht.",
    "Wilt u de 2FA resetten?",
    "Kunnen jullie de 2FA van mevrouw resetten?",
    "Zou u de tweestapsverificatie willen herstellen?",
    "Bij deze geven wij daartoe opdracht.",
    "Wij verzoeken u de 2FA te resetten.",
    "Verzoek om de 2FA te resetten, mevrouw kan niet meer inloggen.",
    "Graag de 2FA resetten omdat mevrouw niet meer kan inloggen.",
    "De gemeente geeft toestemming voor de reset.",
    "Wij gaan akkoord met het resetten van de 2FA.",
    "Please reset the two-factor authentication for this account.",
    "The municipality of Nijmegen hereby authorises the 2FA reset.",
    "Could you reset the 2FA for this resident?",
    "We request a reset of the 2FA.",
]

INSTRUCTION_REFUSED = [
    "Wij geven nog geen opdracht tot reset.",
    "Reset de 2FA nog niet.",
    "Zodra de identiteit is gecontroleerd, geven wij opdracht tot reset.",
    "Wij geven opdracht voor de reset als mevrouw langs is geweest.",
    "Moeten wij opdracht geven voor de reset?",
    "Is de 2FA al gereset?",
    "Mevrouw wil graag haar 2FA laten resetten.",
    "Graag het wachtwoord resetten.",
    "Bedankt voor het resetten van de 2FA, graag nog een bevestiging.",
    "Ik heb een vraag over de reset.",
    "We will instruct the reset later.",
    "Please do not reset the 2FA.",
    "Once we have checked the ID, please reset the 2FA.",
    "Do you need our permission to reset?",
    "The resident asked us to reset her 2FA.",
]


def _item_state(text: str, item: Item) -> tuple[bool, MissingDetail | None]:
    request = extract(text)
    ok = {Item.IDENTITY_VERIFIED: request.identity_verified,
          Item.RESET_INSTRUCTED: request.reset_instructed}[item]
    return ok, request.missing_details.get(item)


@pytest.mark.parametrize("text", IDENTITY_CONFIRMED)
def test_identity_confirmed(text: str) -> None:
    request = extract(text)
    assert request.identity_verified is expected(text, True, "identity_verified"), text
    if request.identity_verified:
        assert any(e.item is Item.IDENTITY_VERIFIED for e in request.evidence)


@pytest.mark.parametrize(("text", "detail"), IDENTITY_REFUSED)
def test_identity_refused(text: str, detail: MissingDetail | None) -> None:
    ok, got = _item_state(text, Item.IDENTITY_VERIFIED)
    assert not ok, text
    if detail is not None:  # the allowlist names why: a word, a doubt, a retraction
        assert got in {detail, *ALLOWLIST_DETAILS}, got


@pytest.mark.parametrize("text", INSTRUCTION_CONFIRMED)
def test_instruction_confirmed(text: str) -> None:
    request = extract(text)
    assert request.reset_instructed is expected(text, True, "reset_instructed"), text
    if request.reset_instructed:
        assert any(e.item is Item.RESET_INSTRUCTED for e in request.evidence)


@pytest.mark.parametrize("text", INSTRUCTION_REFUSED)
def test_instruction_refused(text: str) -> None:
    ok, _ = _item_state(text, Item.RESET_INSTRUCTED)
    assert not ok, text


def test_identity_question_is_not_instruction_either() -> None:
    request = extract("Moeten wij de identiteit controleren voordat jullie de 2FA resetten?")
    assert not request.identity_verified
    assert not request.reset_instructed


def test_contradiction_vetoes() -> None:
    text = "De identiteit is gecontroleerd.\nCorrectie: de identiteit is nog niet gecontroleerd."
    request = extract(text)
    assert not request.identity_verified
    assert request.missing_details[Item.IDENTITY_VERIFIED] in ALLOWLIST_DETAILS


def test_hard_wrapped_sentence_is_joined() -> None:
    text = (
        "Goedemiddag, hierbij laat ik u weten dat de identiteit van de inwoner\n"
        "vandaag aan de balie is gecontroleerd met een geldig paspoort.\n"
    )
    assert extract(text).identity_verified is expected(text, True, "identity_verified")


def test_negation_in_wrapped_continuation_still_refuses() -> None:
    text = (
        "Goedemiddag, hierbij laat ik u weten dat de identiteit van de inwoner\n"
        "vandaag aan de balie nog niet is gecontroleerd.\n"
    )
    assert not extract(text).identity_verified


# More realistic phrasings, written to the policy (not to any one message).
MORE_IDENTITY_CONFIRMED = [
    "Mevrouw is vandaag langs geweest en heeft zich gelegitimeerd met haar paspoort.",
    "Identiteit is door mij gecontroleerd aan de hand van een geldig ID-bewijs.",
    "Ik heb de identiteit van de inwoner gecontroleerd middels zijn rijbewijs.",
    "Wij hebben de persoonsgegevens gecontroleerd in de BRP.",
    "Identiteitscontrole heeft plaatsgevonden aan de balie.",
    "ID gecontroleerd.",
    "Paspoort is gecontroleerd en komt overeen met de gegevens in ons systeem.",
    "Meneer heeft zich geïdentificeerd met zijn verblijfsdocument.",
    "Hierbij bevestig ik dat de identiteit van de inwoner is gecontroleerd.",
    "Hierbij de bevestiging dat de identiteit is vastgesteld.",
    "I have personally verified her identity using her passport.",
    "Identity confirmed via passport at the front desk.",
    "ID checked.",
]
MORE_IDENTITY_REFUSED = [
    "De identiteit kon niet worden vastgesteld omdat mevrouw geen geldig ID had.",
    "Wij hebben de identiteit nog niet kunnen controleren.",
    "Meneer komt morgen langs om zich te legitimeren.",
    "Na controle van de identiteit zullen wij opdracht geven.",
    "Het paspoort is nog niet gezien.",
    "Identiteit nog te controleren.",
    "Identity not yet verified, will follow.",
    "Kunt u bevestigen dat de identiteit is gecontroleerd?",
    "Graag ontvangen wij een bevestiging dat de identiteit van de inwoner is gecontroleerd.",
    "- een bevestiging dat de identiteit van de inwoner is gecontroleerd",
    "Please confirm the identity has been verified.",
    "We need confirmation that the identity was checked.",
    "Het e-mailadres is gecontroleerd bij de inwoner.",
    "Mevrouw heeft een nieuw paspoort aangevraagd en wij hebben gecontroleerd dat het account "
    "bestaat.",
]
MORE_INSTRUCTION_CONFIRMED = [
    "Wij verzoeken jullie de 2FA te resetten.",
    "Kunnen jullie de tweestapsverificatie van dit account resetten?",
    "Hierbij geef ik opdracht tot het resetten van de 2FA.",
    "Namens de gemeente geef ik toestemming voor het herstellen van de 2FA.",
    "Zouden jullie de 2FA willen resetten?",
    "Het verzoek is om de 2FA-koppeling te verwijderen.",
    "Wilt u de authenticator ontkoppelen?",
    "Ik wil u vragen om de 2FA te resetten.",
    "De gemeente gaat akkoord met het resetten van de 2FA.",
    "Reset a.u.b. de 2FA van deze inwoner.",
    "De 2FA mag gereset worden.",
    "Please proceed with resetting the 2FA.",
    "We hereby request that you reset the two-factor authentication.",
    "Can you please reset 2FA for this account?",
    "The municipality authorises Forus to reset the 2FA.",
]
MORE_INSTRUCTION_REFUSED = [
    "Kunt u bevestigen dat de 2FA is gereset?",
    "Kunt u laten weten wanneer de 2FA is gereset?",
    "Graag ontvang ik een bevestiging zodra de 2FA is gereset.",
    "Graag een terugkoppeling na de reset.",
    "Opdracht tot reset volgt na de identiteitscontrole.",
    "Mevrouw geeft toestemming voor de reset.",
    "Bedankt voor je verzoek om de twee-factor authenticatie (2FA) van een inwoner te herstellen.",
    "Mag ik de 2FA zelf resetten?",
    "Please let us know when the reset is done.",
    "Thanks for resetting the 2FA.",
]


@pytest.mark.parametrize("text", MORE_IDENTITY_CONFIRMED)
def test_more_identity_confirmed(text: str) -> None:
    assert extract(text).identity_verified is expected(text, True, "identity_verified"), text


@pytest.mark.parametrize("text", MORE_IDENTITY_REFUSED)
def test_more_identity_refused(text: str) -> None:
    assert not extract(text).identity_verified, text


@pytest.mark.parametrize("text", MORE_INSTRUCTION_CONFIRMED)
def test_more_instruction_confirmed(text: str) -> None:
    assert extract(text).reset_instructed is expected(text, True, "reset_instructed"), text


@pytest.mark.parametrize("text", MORE_INSTRUCTION_REFUSED)
def test_more_instruction_refused(text: str) -> None:
    assert not extract(text).reset_instructed, text


@pytest.mark.parametrize(
    ("text", "identity", "instruction"),
    [
        ("Zou u de 2FA kunnen resetten zodra u tijd heeft?", False, True),
        ("Als consulent heb ik de identiteit van mevrouw gecontroleerd.", True, False),
        ("Graag de 2FA resetten, mevrouw komt morgen langs om opnieuw in te loggen.", False, True),
        ("Graag de 2FA resetten, als er vragen zijn hoor ik het graag.", False, True),
        ("We verified her identity when she visited our office.", True, False),
        ("De identiteit wordt morgen gecontroleerd, graag dan de 2FA resetten.", False, False),
        ("We zullen morgen opdracht geven tot de reset.", False, False),
        ("Zodra de identiteit is gecontroleerd, graag de 2FA resetten.", False, False),
    ],
)
def test_scopes_of_refusal(text: str, identity: bool, instruction: bool) -> None:
    request = extract(text)
    assert request.identity_verified is expected(text, identity, "identity_verified")
    assert request.reset_instructed is expected(text, instruction, "reset_instructed")


@pytest.mark.parametrize(
    ("text", "instruction"),
    [
        ("Graag het oude e-mailadres verwijderen.", False),
        ("Graag het verzoek in gang zetten.", False),
        ("Graag de 2FA-koppeling verwijderen.", True),
        ("Wilt u de tweestapsverificatie uitzetten?", True),
        ("Please remove the old phone number.", False),
        ("Please remove the 2FA from this account.", True),
    ],
)
def test_weak_objects_need_2fa(text: str, instruction: bool) -> None:
    assert extract(text).reset_instructed is expected(text, instruction, "reset_instructed")


@pytest.mark.parametrize(
    ("text", "identity", "instruction"),
    [
        ("Is de identiteit gecontroleerd? Ja.\nMogen jullie resetten? Ja.", True, True),
        ("Is de identiteit gecontroleerd? Nee, nog niet.\nMogen jullie resetten? Ja.", False, True),
        ("Is de identiteit gecontroleerd? Ja, dat moet nog gebeuren.", False, False),
        ("Mogen jullie de 2FA resetten?", False, False),
        ("Klopt, identiteit gecontroleerd en jullie mogen de 2FA resetten.", True, True),
        ("We did check the resident's ID card at our counter.", True, False),
        ("Kun je de 2fa resetten van dit account?", False, True),
        ("Mag ik jullie vragen de 2FA te resetten?", False, True),
    ],
)
def test_answered_questions_and_permissions(text: str, identity: bool, instruction: bool) -> None:
    request = extract(text)
    assert request.identity_verified is expected(text, identity, "identity_verified")
    assert request.reset_instructed is expected(text, instruction, "reset_instructed")


@pytest.mark.parametrize(
    "text",
    [
        "Graag de 2FA resetten.\nCorrectie: graag nog even niets doen.",
        "Graag de 2FA resetten. Wacht u alstublieft met de reset.",
        "Please reset the 2FA. Actually, please hold off for now.",
    ],
)
def test_a_hold_vetoes_the_instruction(text: str) -> None:
    request = extract(text)
    assert not request.reset_instructed
    assert request.missing_details[Item.RESET_INSTRUCTED] in ALLOWLIST_DETAILS


@pytest.mark.parametrize(
    ("text", "instruction"),
    [
        ("Kunt u de 2FA resetten zodat ze zelf weer kan inloggen?", True),
        ("Graag de 2FA resetten van het account waar mevrouw mee inlogt.", True),
        ("Could you explain how the 2FA reset works?", False),
        ("Hoe kunnen wij de 2FA laten resetten?", False),
        ("Kan de inwoner de 2FA zelf resetten?", False),
        ("Mevrouw vraagt of haar 2FA gereset kan worden.", False),
    ],
)
def test_information_questions_versus_requests(text: str, instruction: bool) -> None:
    assert extract(text).reset_instructed is expected(text, instruction, "reset_instructed")
