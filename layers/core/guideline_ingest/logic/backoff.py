"""When a job given back after a transient failure comes again, and how long it may keep trying.

No openai import here: the sweeper states the same budget in its reasons.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# SQS DelaySeconds cannot exceed 15 minutes: no delay between deliveries is longer.
MAX_DELIVERY_DELAY_SECONDS = 900


@dataclass(frozen=True)
class RetryPolicy:
    """When a job given back after a transient failure comes again (template: RetryBackoffBaseSeconds,
    RetryBackoffCapSeconds; what is left of RetryBudgetSeconds is given to each `delay`)."""

    base_seconds: float
    cap_seconds: float

    def delay(self, retries: int, retry_after: float | None, budget_left: float, rng=random) -> int | None:
        """Whole seconds until the next delivery after the failure numbered `retries` (0 for the
        first), or None when the budget is spent. Full jitter spreads the jobs of one outage; the
        LLM's Retry-After is a floor; the last try comes when the budget ends, not after."""
        if budget_left < 1:
            return None
        backoff = rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** min(retries, 32)))
        wait = min(max(backoff, retry_after or 0.0), MAX_DELIVERY_DELAY_SECONDS, budget_left)
        return max(1, math.ceil(wait))


def describe_duration(seconds: float) -> str:
    """A budget as a person reads it: 21600 -> "6 h", 90 -> "90 s", 5400 -> "90 min"."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def budget_spent_reason(budget_seconds: float, error: str) -> str:
    """Why a job ends FAILED with llm_unavailable, worded once: the process function says it when the
    LLM refuses with no budget left, the sweeper for a job that no delivery came back to."""
    budget = describe_duration(budget_seconds)
    return f"The LLM stayed unavailable for the whole retry budget of {budget}: {error}."
