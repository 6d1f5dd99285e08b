"""The reconnect backoff of the mailbox adapter (pure)."""

from __future__ import annotations

import pytest

from reset_mailbot.adapters.imap import Mailbox, backoff_delay


def test_doubles_from_base_until_the_cap() -> None:
    delays = [backoff_delay(n, base=1.0, cap=60.0, jitter=0.0) for n in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_huge_attempt_numbers_stay_capped() -> None:
    assert backoff_delay(10_000, base=0.5, cap=300.0, jitter=0.0) == 300.0


def test_jitter_adds_at_most_the_fraction_and_never_exceeds_the_cap() -> None:
    assert backoff_delay(2, base=1.0, cap=100.0, jitter=0.5, rand=lambda: 0.0) == 4.0
    assert backoff_delay(2, base=1.0, cap=100.0, jitter=0.5, rand=lambda: 0.999) == pytest.approx(
        5.998
    )
    assert backoff_delay(20, base=1.0, cap=100.0, jitter=0.5, rand=lambda: 0.999) == 100.0


def test_negative_attempt_is_a_bug() -> None:
    with pytest.raises(ValueError):
        backoff_delay(-1)


def test_plain_text_only_to_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Mailbox("imap.example.nl", 143, "none", "u", "p")
    Mailbox("127.0.0.1", 143, "none", "u", "p")  # no connection is made by the constructor
    assert "secret" not in repr(Mailbox("imap.example.nl", 993, "ssl", "u", "secret"))
