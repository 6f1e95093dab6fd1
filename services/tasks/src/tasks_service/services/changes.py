"""Incremental sync: a user's changes after a cursor (`GET /api/changes`), the cursor to start
from, and the purge that keeps the log to its retention period.

A cursor is the `seq` of the last entry a client has applied, as a decimal string (opaque to
clients). Entries of one owner become visible in `seq` order (migration 0004), so "after the
cursor" never skips an entry that commits later.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from taskgate_common.errors import ApiError, DatabaseUnavailable
from tasks_service.context import TasksContext
from tasks_service.repositories import changes, stream_tickets
from tasks_service.repositories.changes import ChangeEntry

logger = logging.getLogger("taskgate.tasks.changes")

MAX_CURSOR = 2**63 - 1
PURGE_BATCH = 5_000
# Any constant: the purge's lock, so that replicas take turns rather than race.
_PURGE_LOCK = 0x7461736B70757267


@dataclass(frozen=True, slots=True)
class ChangePage:
    entries: list[ChangeEntry]
    next_cursor: int
    has_more: bool


def invalid_cursor(detail: str, loc: tuple[str, str] = ("query", "since")) -> ApiError:
    return ApiError(
        422,
        "invalid_cursor",
        f"Invalid cursor: {detail}",
        errors=[{"loc": loc, "msg": detail, "type": "value_error"}],
    )


def sync_expired() -> ApiError:
    return ApiError(
        410,
        "sync_expired",
        "Changes this old are no longer kept: read the boards and tasks in full, then sync "
        "from the cursor GET /api/changes gives without `since`",
    )


def parse_cursor(value: str, loc: tuple[str, str] = ("query", "since")) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 19 or int(value) > MAX_CURSOR:
        raise invalid_cursor("not a cursor this API gave", loc)
    return int(value)


async def read_page(
    ctx: TasksContext, owner_id: uuid.UUID, after: int | None, limit: int
) -> ChangePage:
    """The entries after `after` (None: none, only the cursor to start from)."""
    async with ctx.db.connect() as db:
        found = await changes.read(db, owner_id, after or 0, 0 if after is None else limit + 1)
    if after is None:
        return ChangePage([], found.latest, False)
    check_cursor(after, found.latest, found.purged_through)
    entries = found.entries[:limit]
    next_cursor = entries[-1].seq if entries else after
    return ChangePage(entries, next_cursor, len(found.entries) > limit)


def check_cursor(
    after: int, latest: int, purged_through: int, loc: tuple[str, str] = ("query", "since")
) -> None:
    if after < purged_through:
        raise sync_expired()
    if after > latest:
        # Every cursor the API gives is one of the owner's entries (or 0, or the horizon).
        raise invalid_cursor("not a cursor this API gave", loc)


async def purge_expired(ctx: TasksContext) -> int:
    """Remove entries past the retention period and spent or expired stream tickets, in
    batches, unless another replica is doing it right now. Returns the entries removed."""
    before = datetime.now(UTC) - timedelta(hours=ctx.settings.changes_retention_hours)
    removed = 0
    while True:
        async with ctx.db.transaction() as db:
            if not await db.fetchval("SELECT pg_try_advisory_xact_lock($1)", _PURGE_LOCK):
                return removed
            batch = await changes.purge(db, before, PURGE_BATCH)
            if removed == 0:
                await stream_tickets.purge_expired(db)
        removed += batch
        ctx.metrics.changes_purged.inc(batch)
        if batch < PURGE_BATCH:
            return removed


async def run_purges(ctx: TasksContext) -> None:
    """The purge, at start and then every `changes_purge_interval_seconds`, for the
    process's life; a database outage only postpones it."""
    while True:
        try:
            await purge_expired(ctx)
        except DatabaseUnavailable:
            pass
        except Exception:
            logger.exception("purging the change log failed")
        await asyncio.sleep(ctx.settings.changes_purge_interval_seconds)
