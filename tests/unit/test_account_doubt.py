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
])
def test_doubted_or_lookalike_address_is_never_the_account(text: str) -> None:
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
