"""The account address is never guessed (issue #12, item 6): a negated or hedged address, an
address with a look-alike letter from another script, or two renderings that disagree make the
account ambiguous, and the reply asks for it."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.extraction import both_renderings
from reset_mailbot.domain.models import ResetRequest
from reset_mailbot.domain.reasons import Item, MissingDetail
from tests.unit.extraction_helpers import extract


@pytest.mark.parametrize("text", [
    "Het gaat NIET om het account k.verbeek@gmail.com.",
    "k.verbeek@gmail.com is niet het account van mevrouw.",
    "Het account staat waarschijnlijk op c.nunes@hotmail.com.",
    "Het oude adres j.jansen@hotmail.com werkt niet meer.",
    "The account is probably m.smith@gmail.com.",
    "E-mailadres account: jeroen.visser@gm\u0430il.com",  # Cyrillic a
    "Het account staat op naam van haar ex-partner, rob.dekkers@gmail.com.",
    "Please reset the 2FA for her sister's account, f.adebayo@gmail.com.",
    # alternatives, or two addresses on a label line: a label does not settle it (policy)
    "Please reset 2FA for his account - it's either carlos.lopez@gmail.com or c.lopez@hotmail.com.",
    "Het account is a.jansen@gmail.com of a.jansen@hotmail.com.",
    "Account: a.jansen@gmail.com / a.jansen@hotmail.com",
    "Account: a.jansen@gmail.com<mailto:a.jansen@gmail.com> of "
    "a.jansen@hotmail.com<mailto:a.jansen@hotmail.com>",
    "Het account van mevrouw is ofwel a.jansen@gmail.com\nofwel a.jansen@hotmail.com.",
    "E-mailadres account: a.jansen@gmail.com (of misschien a.jansen@hotmail.com)",
    "Bij afwezigheid e-mail: team-inkomen@example.nl of s.kuipers@example.nl",
    ("Het e-mailadres van haar Forus-account is yara.mahmoud@gmail.com. Ze gebruikt dat "
     "adres niet meer voor contact; haar nieuwe adres yara.m@outlook.com is dus niet het "
     "account."),
])
def test_doubted_lookalike_or_alternative_address_is_never_the_account(text: str) -> None:
    request = extract(text)
    assert request.account_email is None
    assert request.missing_details[Item.ACCOUNT_EMAIL] is MissingDetail.AMBIGUOUS


@pytest.mark.parametrize("text", [
    "Graag de 2FA resetten van piet.jansen@hotmail.com, ze kan niet meer inloggen.",
    "E-mailadres account: piet.jansen@hotmail.com",
])
def test_a_plain_address_still_counts(text: str) -> None:
    assert extract(text).account_email == "piet.jansen@hotmail.com"


def test_renderings_that_disagree_on_the_account_make_it_ambiguous() -> None:
    plain = ResetRequest(account_email="a@example.nl", identity_verified=True,
                         reset_instructed=True)
    html = ResetRequest(account_email="b@example.nl", identity_verified=True,
                        reset_instructed=False)
    both = both_renderings(plain, html)
    assert both.account_email is None and both.identity_verified and not both.reset_instructed
    assert both.missing_details[Item.ACCOUNT_EMAIL] is MissingDetail.AMBIGUOUS


@pytest.mark.parametrize(("text", "account"), [
    ("E-mailadres|piet.jansen@hotmail.com", "piet.jansen@hotmail.com"),
    ("Account: 'piet.jansen@hotmail.com'", "piet.jansen@hotmail.com"),
    ('Account: "piet.jansen@hotmail.com"', "piet.jansen@hotmail.com"),
    ("Zie https://beheer.forus.test/identities?q=ward.bosch%40gmail.com&email=ward.bosch@gmail.com",
     None),
    ("Zie beheer.forus.test/identities?email=ward.bosch@gmail.com", None),
])
def test_an_address_is_a_whole_token_and_never_one_inside_a_link(
    text: str, account: str | None
) -> None:
    assert extract(text).account_email == account


@pytest.mark.parametrize("text", [
    "Voor dringende zaken kunt u contact opnemen met mijn collega jelle.mulder@example.nl.",
    "Ik ben afwezig. Mail gerust naar info@example.nl.",
    "Bel of mail Kees (kees@example.nl) als er iets is.",
])
def test_an_address_no_sentence_explains_is_no_account(text: str) -> None:
    """Allowlist: an unlabelled address counts only in a sentence about an account, a login,
    the reset or the resident; a colleague's address in an out-of-office text is none."""
    request = extract(text)
    assert request.account_email is None
    assert Item.ACCOUNT_EMAIL not in request.missing_details  # not ambiguous: simply not given


@pytest.mark.parametrize("text", [
    "Mevrouw Asante (akosua.asante@yahoo.com) is vandaag langs geweest.",
    "Een inwoner (m.bouzid@outlook.com) heeft een nieuwe telefoon.",
    "Can you remove the 2FA from her account? It's sofia.andersson@telia.se.",
    "Hij heeft inlogproblemen met bert.jonker@hetnet.nl.",
    "Ms. Evans (k.evans@gmail.com) came to the desk.",
])
def test_an_address_in_a_sentence_about_the_resident_or_the_account_counts(text: str) -> None:
    assert extract(text).account_email is not None


def test_a_labelled_account_still_wins_over_an_address_on_another_line() -> None:
    text = ("E-mailadres account: nieuw@gmail.com\n"
            "Mevrouw is bereikbaar op haar werkadres mevrouw@bedrijf.nl.\n")
    assert extract(text).account_email == "nieuw@gmail.com"


@pytest.mark.parametrize(("text", "account"), [
    # a labelled typo, corrected without a label: never the typo, never a guess
    ("E-mailadres account: j.pietersen@gmial.com\n"
     "Sorry, typfout! Het juiste adres is j.pietersen@gmail.com.", None),
    ("Account: aisha.kahn@outlook.com\nOops, I meant aisha.khan@outlook.com.", None),
    ("Graag de 2FA resetten van j.pietersen@gmial.com.\n"
     "Sorry, typfout! Het juiste adres is j.pietersen@gmail.com.", None),
    # the correction itself labelled as the account (policy v2): that one
    ("Please reset the 2FA for aisha.kahn@outlook.com.\n"
     "Correction: the account address is aisha.khan@outlook.com.", "aisha.khan@outlook.com"),
    ("Account: aisha.kahn@outlook.com\n"
     "Correction: the account address is aisha.khan@outlook.com.", "aisha.khan@outlook.com"),
])
def test_a_corrected_address_is_ambiguous_unless_the_correction_is_labelled(
    text: str, account: str | None
) -> None:
    request = extract(text)
    assert request.account_email == account
    if account is None:
        assert request.missing_details[Item.ACCOUNT_EMAIL] is MissingDetail.AMBIGUOUS


@pytest.mark.parametrize(("text", "account"), [
    ("Account: x.jansen@gmail.com\nNee wacht, het is y.jansen@gmail.com.", None),
    ("Account: x.jansen@gmail.com\nHet is eigenlijk y.jansen@gmail.com.", None),
    ("E-mailadres account: x.jansen@gmail.com\nHaar nieuwe adres is y.jansen@gmail.com.", None),
    ("E-mailadres account: x.jansen@gmail.com\nZe is bereikbaar op haar werkadres y@bedrijf.nl.",
     "x.jansen@gmail.com"),
    ("De inwoner heeft twee mailadressen: n.bakker@ziggo.nl en nina.bakker@gmail.com.\n"
     "E-mailadres account: nina.bakker@gmail.com", "nina.bakker@gmail.com"),
])
def test_a_label_wins_only_over_an_address_that_is_said_to_be_another(
    text: str, account: str | None
) -> None:
    """Allowlist for the label rule too: the other address must be explained as another one
    (contact, work, 'two addresses: ...'); an address nothing explains makes it ambiguous."""
    assert extract(text).account_email == account
