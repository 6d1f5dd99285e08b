"""account_email candidates (issue #3, item 4; policy clarifications)."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.extraction.account import find_addresses
from reset_mailbot.domain.reasons import Item, MissingDetail
from tests.unit.extraction_helpers import SENDER, SUPPORT, extract


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("E-mailadres account: piet.jansen@hotmail.com", "piet.jansen@hotmail.com"),
        ("e-mailadres: Piet.Jansen@Hotmail.COM.", "piet.jansen@hotmail.com"),
        ("account: x@y.nl", "x@y.nl"),
        ("Email address of the account: lisa@live.nl", "lisa@live.nl"),
        ("E-mailadres van het account:\nlisa@live.nl", "lisa@live.nl"),
        ("E-mailadres inwoner\tlisa@live.nl", "lisa@live.nl"),
        ("Graag resetten voor lisa@live.nl, dank!", "lisa@live.nl"),
        ("Het adres is (lisa@live.nl).", "lisa@live.nl"),
        ("Account: lisa@live.nl<mailto:lisa@live.nl>", "lisa@live.nl"),
        ("Account: jan@müller.nl", "jan@müller.nl"),
        ("Account: jan@xn--mller-kva.nl", "jan@müller.nl"),
        ("Account <mailto:lisa@live.nl>", "lisa@live.nl"),
    ],
)
def test_single_candidate(text: str, expected: str) -> None:
    assert extract(text).account_email == expected


def test_labelled_wins_over_unlabelled() -> None:
    text = (
        "Mevrouw gebruikte eerder oud@gmail.com.\n"
        "E-mailadres account: nieuw@gmail.com\n"
        "Bij vragen: collega@gmail.com\n"
    )
    assert extract(text).account_email == "nieuw@gmail.com"


def test_two_unlabelled_are_ambiguous() -> None:
    request = extract("Het oude adres was oud@gmail.com en nu nieuw@gmail.com.")
    assert request.account_email is None
    assert request.missing_details[Item.ACCOUNT_EMAIL] is MissingDetail.AMBIGUOUS


def test_two_labelled_are_ambiguous() -> None:
    request = extract("Account: a@gmail.com\nE-mailadres account: b@gmail.com\n")
    assert request.missing_details[Item.ACCOUNT_EMAIL] is MissingDetail.AMBIGUOUS


def test_case_insensitive_duplicates_are_one() -> None:
    request = extract("Graag resetten voor Lisa@Live.nl (lisa@live.nl).")
    assert request.account_email == "lisa@live.nl"


def test_excluded_addresses_never_count_even_labelled() -> None:
    text = f"Account: {SENDER}\nCc: collega@utrecht.nl\nsupport: {SUPPORT}\n"
    request = extract(text, frozenset({SENDER, SUPPORT, "collega@utrecht.nl"}))
    assert request.account_email is None
    assert Item.ACCOUNT_EMAIL not in request.missing_details


def test_excluded_plus_one_candidate() -> None:
    text = f"Graag resetten voor piet@gmail.com, ik ben bereikbaar op {SENDER}."
    assert extract(text).account_email == "piet@gmail.com"


def test_obfuscated_is_not_deobfuscated() -> None:
    assert extract("Account: jan[at]gmail.com").account_email is None
    assert extract("Account: jan (at) gmail (dot) com").account_email is None


def test_invalid_labelled_address() -> None:
    request = extract("E-mailadres account: jan@gmail")
    assert request.account_email is None
    request = extract("E-mailadres account: jan..jansen@gmail.com")
    assert request.missing_details.get(Item.ACCOUNT_EMAIL) is MissingDetail.INVALID


def test_evidence_kinds() -> None:
    request = extract("E-mailadres account: lisa@live.nl")
    assert [(e.item, e.kind) for e in request.evidence] == [(Item.ACCOUNT_EMAIL, "label")]
    request = extract("Graag resetten voor lisa@live.nl")
    assert request.evidence[0].kind == "sentence"


def test_find_addresses_is_linear_on_hostile_input() -> None:
    assert find_addresses(["a" * 100_000]) == []
    assert len(find_addresses(["a@b.nl " * 10_000])) == 200  # bounded
    found = find_addresses(["x" * 500 + "@" + "y" * 500 + ".nl"])
    assert all(len(o.address) < 400 for o in found)
