"""Only the sender's own new text counts (issue #3, item 2): quote headers per client style,
">" lines, signatures and disclaimers."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.extraction.quotes import segments
from tests.unit.extraction_helpers import extract, shipped_rules

NEW = "Hierbij de aanvulling.\n\n"
QUOTED_TEMPLATE = (
    "\nE-mailadres account: oud.adres@gmail.com\n"
    "Identiteit gecontroleerd: ja\n"
    "Opdracht tot reset: ja\n"
    "De identiteit van de inwoner is aan de balie gecontroleerd.\n"
    "Graag de 2FA resetten.\n"
)

HEADERS = {
    "outlook_nl": (
        "Van: Forus Support <support@forus.test>\nVerzonden: woensdag 25 november 2026 10:00\n"
        "Aan: Jan de Vries <j.devries@utrecht.nl>\nOnderwerp: RE: 2FA\n"
    ),
    "outlook_en": (
        "From: Forus Support <support@forus.test>\nSent: Wednesday, November 25, 2026 10:00 AM\n"
        "To: Jan de Vries <j.devries@utrecht.nl>\nSubject: RE: 2FA\n"
    ),
    "outlook_bold": "*Van:* Forus Support\n*Verzonden:* woensdag 25 november 2026\n",
    "outlook_web_divider": "________________________________\nVan: Forus Support\n",
    "oorspronkelijk": "-----Oorspronkelijk bericht-----\nVan: Forus\n",
    "original_message": "-----Original Message-----\nFrom: Forus\n",
    "gmail_nl": "Op wo 25 nov. 2026 om 10:00 schreef Forus Support <support@forus.test>:\n",
    "gmail_nl_wrapped_address": (
        "Op wo 25 nov. 2026 om 10:00 schreef Forus Support <\nsupport@forus.test>:\n"
    ),
    "gmail_nl_wrapped_name": (
        "Op wo 25 nov. 2026 om 10:00\nschreef Forus Support <support@forus.test>:\n"
    ),
    "gmail_en": "On Wed, Nov 25, 2026 at 10:00 AM Forus Support <support@forus.test> wrote:\n",
    "apple_nl": (
        "Op 25 nov. 2026, om 10:00 heeft Forus Support <support@forus.test> "
        "het volgende geschreven:\n"
    ),
    "apple_forward_nl": "Begin doorgestuurd bericht:\n\nVan: Forus Support <support@forus.test>\n",
    "apple_forward_en": "Begin forwarded message:\n\nFrom: Forus Support\n",
    "gmail_forward": "---------- Forwarded message ---------\nVan: Forus Support\n",
    "doorgestuurd": "---------- Doorgestuurd bericht ----------\nVan: Forus Support\n",
    "angle_quotes": "> Identiteit gecontroleerd: ja\n> Graag de 2FA resetten.\n",
}


@pytest.mark.parametrize("style", sorted(HEADERS))
def test_quoted_history_never_counts(style: str) -> None:
    request = extract(NEW + HEADERS[style] + QUOTED_TEMPLATE)
    assert request.account_email is None, style
    assert not request.identity_verified, style
    assert not request.reset_instructed, style


def test_answers_typed_inside_the_quote_do_not_count() -> None:
    text = (
        "Zie mijn antwoorden hieronder.\n\n"
        "> Wil je de volgende gegevens aanvullen?\n"
        "> Identiteit gecontroleerd (ja/nee):\n"
        "Identiteit gecontroleerd: ja\n"
        "> Opdracht tot reset (ja/nee):\n"
        "ja\n"
    )
    request = extract(text)
    assert not request.identity_verified and not request.reset_instructed


def test_new_text_above_the_quote_counts() -> None:
    text = (
        "E-mailadres account: piet@hotmail.com\nIdentiteit gecontroleerd: ja\n"
        "Opdracht tot reset: ja\n\n" + HEADERS["outlook_nl"]
        + "\nIdentiteit gecontroleerd (ja/nee):\n"
    )
    request = extract(text)
    assert request.missing == []
    assert request.account_email == "piet@hotmail.com"


def test_our_unfilled_template_quoted_back_without_header_does_not_count() -> None:
    text = (
        "E-mailadres account:\nIdentiteit gecontroleerd (ja/nee):\nOpdracht tot reset (ja/nee):\n"
        "- een bevestiging dat de identiteit van de inwoner is gecontroleerd\n"
        "- een bevestiging dat de gemeente opdracht geeft om 2FA te resetten\n"
    )
    request = extract(text)
    assert not request.identity_verified and not request.reset_instructed


def test_a_van_line_in_a_sentence_does_not_cut() -> None:
    text = "Van: de afdeling Werk en Inkomen.\nDe identiteit is gecontroleerd met een paspoort.\n"
    assert extract(text).identity_verified


SIGNED = (
    "Graag de 2FA resetten van piet.jansen@hotmail.com.\n"
    "De identiteit is gecontroleerd met een paspoort.\n\n"
)


@pytest.mark.parametrize(
    "signoff",
    ["Met vriendelijke groet,", "Met vriendelijke groeten", "Vriendelijke groet,", "Mvg,",
     "M.v.g.", "Groet,", "Groeten, Jan", "Kind regards,", "Best regards", "-- ",
     "Verzonden vanaf mijn iPhone"],
)
def test_signature_addresses_are_never_candidates(signoff: str) -> None:
    text = SIGNED + signoff + "\nJan de Vries\nE-mail: j.devries@utrecht.nl\n" \
        "Bij afwezigheid: team-inkomen@utrecht.nl of s.kuipers@utrecht.nl\n"
    request = extract(text)
    assert request.account_email == "piet.jansen@hotmail.com", signoff


def test_labelled_address_in_signature_is_not_a_candidate() -> None:
    text = (
        "Graag de 2FA resetten.\n\nMet vriendelijke groet,\nJan\n"
        "E-mailadres: s.kuipers@utrecht.nl\n"
    )
    request = extract(text)
    assert request.account_email is None


def test_disclaimer_without_signoff_is_cut() -> None:
    text = (
        "Graag de 2FA resetten.\n"
        "Dit bericht is uitsluitend bestemd voor de geadresseerde. De identiteit van de "
        "afzender is gecontroleerd door de gemeente. Aan dit bericht kunnen geen rechten "
        "worden ontleend.\n"
    )
    request = extract(text)
    assert not request.identity_verified


def test_segments_report_where_the_quote_began() -> None:
    parts = segments(NEW + HEADERS["gmail_nl"] + QUOTED_TEMPLATE, shipped_rules().compiled)
    assert parts.cut is not None and parts.cut.startswith("Op wo")
    assert parts.body[0] == "Hierbij de aanvulling."


def test_signature_without_signoff_starts_at_the_senders_name() -> None:
    from reset_mailbot.domain.extraction import extract_text
    from reset_mailbot.domain.extraction.quotes import Sender
    from tests.unit.extraction_helpers import SENDER, SUPPORT

    text = (
        "Graag de 2FA resetten voor piet.jansen@hotmail.com.\n"
        "De identiteit is gecontroleerd met een paspoort.\n\n"
        "Jan de Vries\nConsulent Werk en Inkomen\n"
        "Bij afwezigheid e-mail: team-inkomen@utrecht.nl of s.kuipers@utrecht.nl\n"
    )
    excluded = frozenset({SENDER, SUPPORT})
    assert extract(text).account_email is None  # without knowing the sender: ambiguous
    request = extract_text(text, shipped_rules(), excluded, Sender(SENDER, "Jan de Vries"))
    assert request.account_email == "piet.jansen@hotmail.com"
    request = extract_text(text, shipped_rules(), excluded, Sender(SENDER, "Vries, Jan de"))
    assert request.account_email == "piet.jansen@hotmail.com"


def test_signature_without_signoff_starts_at_the_senders_contact_line() -> None:
    from reset_mailbot.domain.extraction import extract_text
    from reset_mailbot.domain.extraction.quotes import Sender
    from tests.unit.extraction_helpers import SENDER, SUPPORT

    text = (
        "Graag de 2FA resetten voor piet.jansen@hotmail.com.\n\n"
        "J. de Vries | T 14 030 | j.devries@utrecht.nl\n"
        "Bij afwezigheid: team-inkomen@utrecht.nl\n"
    )
    request = extract_text(
        text, shipped_rules(), frozenset({SENDER, SUPPORT}), Sender(SENDER, "Jan de Vries")
    )
    assert request.account_email == "piet.jansen@hotmail.com"


def test_postscript_under_the_signoff_counts() -> None:
    text = (
        "Graag de 2FA resetten voor piet@hotmail.com.\n\nMet vriendelijke groet,\nJan\n"
        "E: s.kuipers@utrecht.nl\n\nPS: de identiteit is gisteren aan de balie gecontroleerd.\n"
    )
    request = extract(text)
    assert request.identity_verified
    assert request.account_email == "piet@hotmail.com"


def test_bottom_posted_reply_counts() -> None:
    text = (
        "\nOp 18 nov. 2026 om 09:41 schreef Forus Support <support@forus.test>:\n"
        "> Wij missen nog:\n"
        "> - Bevestiging dat de identiteit van de inwoner is gecontroleerd\n>\n\n"
        "De identiteit is inmiddels gecontroleerd, mevrouw heeft haar ID-kaart laten zien.\n"
        "\nGert\n"
    )
    assert extract(text).identity_verified


def test_interleaved_answers_are_not_bottom_posting() -> None:
    text = (
        "Op 18 nov. 2026 om 09:41 schreef Forus Support <support@forus.test>:\n"
        "> Identiteit gecontroleerd (ja/nee):\nIdentiteit gecontroleerd: ja\n"
        "> Opdracht tot reset (ja/nee):\nOpdracht tot reset: ja\n"
    )
    request = extract(text)
    assert not request.identity_verified and not request.reset_instructed


def test_text_above_the_quote_wins_over_text_below() -> None:
    text = "Graag resetten.\n\n> Identiteit gecontroleerd: ja\n\nDe identiteit is gecontroleerd.\n"
    assert not extract(text).identity_verified


def test_signoff_at_the_end_of_a_line_starts_the_signature() -> None:
    text = (
        "Graag de 2FA resetten voor piet@hotmail.com.\n"
        "Alvast bedankt, met vriendelijke groet,\nJan\nBij afwezigheid: collega@utrecht.nl\n"
    )
    assert extract(text).account_email == "piet@hotmail.com"
