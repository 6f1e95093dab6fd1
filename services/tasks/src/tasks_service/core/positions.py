"""Gap positions: a card goes between its neighbours without renumbering the column.

Positions are BIGINTs spaced `GAP` apart. Placing a card takes the midpoint of its neighbours, so
about 20 moves into the very same slot fit before the gap is used up; only then is the column
renumbered ("rebalanced"), which is rare and done under the owner's lock.
"""

from __future__ import annotations

GAP = 1 << 20
# Stay well inside BIGINT, so `edge ± GAP` can never overflow.
LIMIT = 1 << 62


def between(before: int | None, after: int | None) -> int | None:
    """A position strictly between two neighbours (None = open end), or None when no room."""
    if before is None and after is None:
        return GAP
    if before is None:
        assert after is not None
        candidate = after - GAP
    elif after is None:
        candidate = before + GAP
    else:
        if after - before < 2:
            return None
        candidate = before + (after - before) // 2
    return candidate if -LIMIT < candidate < LIMIT else None


def spread(count: int) -> list[int]:
    """Evenly spaced positions for `count` cards, as after a rebalance."""
    return [GAP * (index + 1) for index in range(count)]
