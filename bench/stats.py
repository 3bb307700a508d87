"""Latency summaries: nearest-rank percentiles, so every reported value is one that was measured."""

from __future__ import annotations

import math


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(latencies_ms: list[float], errors: int, wall_seconds: float) -> dict:
    ordered = sorted(latencies_ms)
    count = len(ordered) + errors
    return {
        "requests": count,
        "errors": errors,
        "p50_ms": round(percentile(ordered, 0.50), 2),
        "p95_ms": round(percentile(ordered, 0.95), 2),
        "p99_ms": round(percentile(ordered, 0.99), 2),
        "max_ms": round(ordered[-1], 2) if ordered else math.nan,
        "throughput_rps": round(count / wall_seconds, 1) if wall_seconds > 0 else math.nan,
    }
