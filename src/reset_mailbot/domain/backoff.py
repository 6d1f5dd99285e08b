"""Capped exponential backoff, the one rule for every retry: outbox replies, executions,
deferred messages and mailbox reconnects.

`delay(n)` is the wait after the n-th failed attempt (1 = the first): base, 2·base, 4·base, ...
never more than `cap`. `jitter` (a fraction) adds up to that much at random, still capped, so
that several daemons do not retry in lock-step; stores keep it 0 so that due times are exact.
Pure apart from the injectable `rand`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

_MAX_EXPONENT = 40  # 2**40 · any sane base is beyond every cap: no unbounded big integers


@dataclass(frozen=True)
class Backoff:
    base: timedelta
    cap: timedelta
    jitter: float = 0.0

    def delay(self, attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
        """The wait after the `attempts`-th failed attempt (0 or less: no wait)."""
        if attempts < 1:
            return timedelta(0)
        wait = min(self.base * 2 ** min(attempts - 1, _MAX_EXPONENT), self.cap)
        if self.jitter:
            wait = min(self.cap, wait * (1 + self.jitter * rand()))
        return wait

    def seconds(self, attempts: int, rand: Callable[[], float] = random.random) -> float:
        return self.delay(attempts, rand).total_seconds()
