"""Nearest-rank percentiles, as the bench reports them (with 20 samples, p99 is the largest)."""

from __future__ import annotations

import math


def percentile(samples: list[float], share: float) -> float:
    """The sample at rank ceil(share * n); NaN when there is none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]
