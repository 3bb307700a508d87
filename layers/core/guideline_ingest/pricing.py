"""Estimated LLM cost from a price table, in US dollars per million tokens.

Prices as published by OpenAI for standard processing; update them with the
price list. A model that is not listed gets no estimate rather than a guess.
"""

from __future__ import annotations

import re

# model: (input, output) USD per 1M tokens
PRICES_PER_MILLION_TOKENS: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


# OpenAI answers with the dated snapshot an alias points at (gpt-4o-mini-2024-07-18).
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def estimated_cost_usd(model: str, input_tokens: int, output_tokens: int) -> float | None:
    prices = PRICES_PER_MILLION_TOKENS.get(model) or PRICES_PER_MILLION_TOKENS.get(_SNAPSHOT.sub("", model))
    if prices is None:
        return None
    input_price, output_price = prices
    return round((input_tokens * input_price + output_tokens * output_price) / 1_000_000, 8)
