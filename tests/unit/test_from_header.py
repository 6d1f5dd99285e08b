"""The From header: exactly one mailbox, strictly parsed, with the one harmless obsolete form."""

from __future__ import annotations

import pytest

from reset_mailbot.domain.message import parse_from_header


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
