"""Choosing a card's position in a column, rebalancing the column only when a gap is used up.

Callers hold the owner's lock (`tasks.owner_lock`), so neighbours cannot change underneath.
"""

from __future__ import annotations

import uuid

from tasks_service.core.positions import between
from tasks_service.repositories import tasks
from tasks_service.repositories.tasks import Connection


async def place(
    db: Connection,
    owner_id: uuid.UUID,
    column_id: uuid.UUID,
    *,
    task_id: uuid.UUID,
    before_id: uuid.UUID | None = None,
    after_id: uuid.UUID | None = None,
) -> int:
    """A free position in a column: just before/after an anchor card, or at its end."""
    for _ in range(2):
        low, high = await _neighbours(db, owner_id, column_id, task_id, before_id, after_id)
        position = between(low, high)
        if position is not None:
            return position
        await tasks.rebalance(db, column_id, exclude=task_id)
    raise RuntimeError("no free position right after a rebalance")  # pragma: no cover


async def _neighbours(
    db: Connection,
    owner_id: uuid.UUID,
    column_id: uuid.UUID,
    task_id: uuid.UUID,
    before_id: uuid.UUID | None,
    after_id: uuid.UUID | None,
) -> tuple[int | None, int | None]:
    anchor_id = before_id or after_id
    if anchor_id is None:
        return await tasks.last_position(db, column_id, exclude=task_id), None
    anchor = await tasks.position_of(db, owner_id, anchor_id)
    if anchor is None:  # checked by the caller under the same lock
        raise RuntimeError("anchor vanished under the owner lock")
    if before_id is not None:
        low = await tasks.neighbour_position(db, column_id, anchor, below=True, exclude=task_id)
        return low, anchor
    high = await tasks.neighbour_position(db, column_id, anchor, below=False, exclude=task_id)
    return anchor, high
