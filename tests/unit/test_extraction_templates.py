"""Filled-in templates count as their value says (issue #3, item 3)."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.reasons import Item, MissingDetail
from tests.unit.extraction_helpers import extract


@pytest.mark.parametrize(
    ("text", "identity", "instruction"),
    [
        ("Identiteit gecontroleerd: ja\nOpdracht tot reset: ja", True, True),
        ("Identiteit gecontroleerd: Ja\nGemeente geeft opdracht tot reset: JA", True, True),
        ("Identiteit gecontroleerd (ja/nee): ja\nOpdracht tot reset (ja/nee): ja", True, True),
        ("Identiteit gecontroleerd: ja, met paspoort aan de balie", True, False),
        ("Identiteit gecontroleerd: nee\nOpdracht tot reset: ja", False, True),
        ("Identiteit gecontroleerd: ja/nee\nOpdracht tot reset: ja/nee", False, False),
        ("Identiteit gecontroleerd:\nOpdracht tot reset:", False, False),
        ("Identiteit gecontroleerd: nog niet", False, False),
        ("Identiteit gecontroleerd: ja, maar nog niet volledig", False, False),
        ("Identiteit gecontroleerd\tja\nOpdracht tot reset\tja", True, True),
        ("Identiteit gecontroleerd\n\nja\n\nOpdracht tot reset\n\nja", True, True),
        ("Identiteit gecontroleerd | ja", True, False),
        ("[x] Identiteit gecontroleerd\n[x] Opdracht tot reset", True, True),
        ("[ ] Identiteit gecontroleerd\n[x] Opdracht tot reset", False, True),
        ("Identity verified: yes\nReset instructed: yes", True, True),
        ("Identity verified: no\nReset instructed: yes", False, True),
        ("- Identiteit gecontroleerd: ja", True, False),
    ],
)
def test_template_values(text: str, identity: bool, instruction: bool) -> None:
    request = extract(text)
    assert request.identity_verified is identity
    assert request.reset_instructed is instruction


def test_template_no_vetoes_a_sentence() -> None:
    text = "De identiteit is gecontroleerd met een paspoort.\nIdentiteit gecontroleerd: nee\n"
    request = extract(text)
    assert not request.identity_verified
    assert request.missing_details[Item.IDENTITY_VERIFIED] is MissingDetail.TEMPLATE_NO


def test_template_line_is_not_read_as_a_sentence() -> None:
    # the unfilled label "Identiteit gecontroleerd" must not count as a statement
    assert not extract("Identiteit gecontroleerd:").identity_verified
    assert not extract("Identiteit gecontroleerd?").identity_verified


def test_sentence_starting_like_a_label_is_still_a_sentence() -> None:
    assert extract("Identiteit gecontroleerd met een paspoort aan de balie.").identity_verified


@pytest.mark.parametrize(
    ("text", "identity", "instruction"),
    [
        ("Identiteit inwoner geverifieerd: ja\nToestemming reset: ja", True, True),
        ("Identiteit: gecontroleerd\nOpdracht: ja", True, True),
        ("Identiteit: nog niet gecontroleerd\nOpdracht: ja", False, True),
        ("Identiteit: wordt morgen gecontroleerd", False, False),
        ("ID-bewijs gecontroleerd: ja\nAkkoord reset 2FA: ja", True, True),
        ("Identity of the resident verified: yes\nPermission to reset: yes", True, True),
        ("Reset approved: no", False, False),
    ],
)
def test_template_label_variants(text: str, identity: bool, instruction: bool) -> None:
    request = extract(text)
    assert request.identity_verified is identity
    assert request.reset_instructed is instruction


@pytest.mark.parametrize(
    ("text", "identity"),
    [
        ("Identiteit gecontroleerd: \u2612 ja \u2610 nee", True),
        ("Identiteit gecontroleerd: \u2610 ja \u2612 nee", False),
        ("Identiteit gecontroleerd: [x] ja [ ] nee", True),
        ("Identiteit gecontroleerd: [ ] ja [ ] nee", False),
        ("Identiteit gecontroleerd: Ja \u2714", True),
        ("Identiteit gecontroleerd: ja nee", False),
        ("Identiteit gecontroleerd: ja of nee", False),
        ("Identiteit gecontroleerd: ja mits de BRP klopt", False),
        ("Bevestiging dat de identiteit van de inwoner is gecontroleerd: ja", True),
        ("Bevestiging dat de identiteit van de inwoner is gecontroleerd", False),
    ],
)
def test_template_ticks_and_help_article_labels(text: str, identity: bool) -> None:
    assert extract(text).identity_verified is identity


def test_help_article_instruction_label() -> None:
    text = "Bevestiging dat de gemeente opdracht geeft om 2FA te resetten: ja"
    assert extract(text).reset_instructed


@pytest.mark.parametrize(
    ("text", "identity"),
    [
        ("ID check: done", True),
        ("Identiteitscontrole: gedaan", True),
        ("Identiteit: in orde", True),
        ("Identiteit gecontroleerd: nog niet gedaan", False),
        ("ID check: not done", False),
    ],
)
def test_done_values(text: str, identity: bool) -> None:
    assert extract(text).identity_verified is identity
