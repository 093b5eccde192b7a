"""When to try a failed message again: exponential backoff with jitter, honouring Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class RetryPolicy:
    base: float = 2.0  # seconds before the first retry
    cap: float = 600.0  # longest wait between attempts
    max_age: float = 86400.0  # give up on a message this old (seconds)
    jitter: float = 0.5  # the wait is drawn from [(1 - jitter) * d, d]

    def delay(self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        d: float = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
        r = (rng or random).random()
        d = d * (1 - self.jitter) + d * self.jitter * r
        if retry_after is not None:
            d = max(d, min(retry_after, self.cap))
        return d


def seconds(d: float) -> str:
    if d < 10:
        return f"{d:.1f} s"
    if d < 120:
        return f"{d:.0f} s"
    return f"{d / 60:.0f} min"
