"""A token bucket: how long to wait before the next call so that calls stay under a rate.

`[executor] max_calls_per_second` protects Forus by intent, not by accident: however large the
backlog and however many workers drain it, the executor never sees more calls per second than
configured (after an initial burst of at most `burst` calls). Pure: the caller passes the time
and does the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # tokens added per second
    burst: float = 1.0  # the most tokens held at once
    tokens: float = field(default=-1.0)  # start full (see __post_init__)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def reserve(self, now: float) -> float:
        """Take one token; the seconds to wait before using it (0.0: go now).

        A reservation is final: waits accumulate, so N callers reserving at once are spaced
        1/rate apart, whatever order they wake in.
        """
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
