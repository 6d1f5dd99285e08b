"""Capped exponential backoff (domain/backoff.py), the one rule for every retry, and the mailbox
adapter's refusal of plain text to anything but loopback."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reset_mailbot.adapters.imap import Mailbox
from reset_mailbot.domain.backoff import Backoff

RECONNECT = Backoff(timedelta(seconds=1), timedelta(seconds=60))


def test_doubles_from_base_until_the_cap() -> None:
    assert [RECONNECT.seconds(n) for n in range(10)] == [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_huge_attempt_numbers_stay_capped() -> None:
    assert Backoff(timedelta(seconds=0.5), timedelta(seconds=300)).seconds(10_000) == 300.0
    assert Backoff(timedelta(seconds=30), timedelta(hours=1)).delay(10_000) == timedelta(hours=1)


def test_jitter_adds_at_most_the_fraction_and_never_exceeds_the_cap() -> None:
    jittery = Backoff(timedelta(seconds=1), timedelta(seconds=100), jitter=0.5)
    assert jittery.seconds(3, rand=lambda: 0.0) == 4.0
    assert jittery.seconds(3, rand=lambda: 0.999) == pytest.approx(5.998)
    assert jittery.seconds(21, rand=lambda: 0.999) == 100.0


def test_no_failure_yet_means_no_wait() -> None:
    assert RECONNECT.delay(0) == timedelta(0)
    assert RECONNECT.delay(-3) == timedelta(0)


def test_plain_text_only_to_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Mailbox("imap.example.nl", 143, "none", "u", "p")
    Mailbox("127.0.0.1", 143, "none", "u", "p")  # no connection is made by the constructor
    assert "secret" not in repr(Mailbox("imap.example.nl", 993, "ssl", "u", "secret"))
