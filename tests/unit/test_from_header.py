"""The From header: exactly one mailbox, strictly parsed, with the one harmless obsolete form."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.message import display_name, parse_from_header


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("J. de Vries <j.devries@utrecht.nl>", "j.devries@utrecht.nl"),  # obs-phrase period
        ('"Vries, Jan de" <J.deVries@Utrecht.NL>', "j.devries@utrecht.nl"),
        ("j.devries@utrecht.nl", "j.devries@utrecht.nl"),
        ("=?utf-8?q?J=C3=A1n?= <jan@nijmegen.nl>", "jan@nijmegen.nl"),
    ],
)
def test_accepted(value: str, address: str) -> None:
    mailbox, problem = parse_from_header([value])
    assert problem is None
    assert mailbox is not None and mailbox.address == address


@pytest.mark.parametrize(
    "value",
    [
        "a@b.nl <c@d.nl>",
        "Jan <j@utrecht.nl> <k@evil.com>",
        "j@utrecht.nl@evil.com",
        "x@y.nl (comment) <z@q.nl>",
        "Vries, Jan <j@utrecht.nl>",
        "undisclosed-recipients:;",
        "a@utrecht.nl, b@utrecht.nl",
        "",
    ],
)
def test_refused(value: str) -> None:
    mailbox, problem = parse_from_header([value])
    assert mailbox is None
    assert problem


def test_two_from_headers_refused() -> None:
    mailbox, problem = parse_from_header(["a@utrecht.nl", "a@utrecht.nl"])
    assert mailbox is None and "2 From headers" in (problem or "")


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("J. de Vries <j.devries@utrecht.nl>", "J. de Vries"),
        ('"Vries, Jan de" <J.deVries@Utrecht.NL>', "Vries, Jan de"),
        ("=?utf-8?q?J=C3=A1n?= <jan@nijmegen.nl>", "Ján"),
        ("=?utf-8?q?Jan=09de=E2=80=AEVries?= <jan@nijmegen.nl>", "Jan de Vries"),  # tab, RLO
        ('"   " <jan@nijmegen.nl>', None),
        ("jan@nijmegen.nl", None),
        ('"' + "x" * 300 + '" <jan@nijmegen.nl>', "x" * 200),
    ],
)
def test_display_name_is_one_printable_bounded_line(value: str, name: str | None) -> None:
    """Stored and passed to the executor (requested_by.name); never used to identify anyone."""
    mailbox, problem = parse_from_header([value])
    assert problem is None
    assert display_name(mailbox) == name
