"""The executor's rate limit (domain/rate_limit.py): calls never exceed the configured rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reset_mailbot.domain.rate_limit import TokenBucket


def test_a_burst_goes_at_once_then_calls_are_spaced_by_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    waits = [bucket.reserve(0.0) for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=2, burst=2)
    assert [bucket.reserve(0.0), bucket.reserve(0.0)] == [0.0, 0.0]
    assert bucket.reserve(10.0) == 0.0  # long idle: full again, but not more than the burst
    assert bucket.reserve(10.0) == 0.0
    assert bucket.reserve(10.0) == pytest.approx(0.5)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_nonsense_settings_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


@given(rate=st.floats(0.5, 200), burst=st.integers(1, 20),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_no_window_ever_holds_more_calls_than_burst_plus_rate_times_its_length(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Whenever callers ask, the times they are let through never exceed the rate."""
    bucket = TokenBucket(rate=rate, burst=burst)
    now, starts = 0.0, []
    for gap in gaps:
        now += gap
        starts.append(now + bucket.reserve(now))
    starts.sort()
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            window = starts[j] - first
            assert j - i + 1 <= burst + window * rate + 1e-6
