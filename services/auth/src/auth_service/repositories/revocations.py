"""SQL of the revocation feed (table `revocations`, written only by the triggers of migration
0005), run on asyncpg connections: it is polled every second by every tasks replica.

Commit-safe order. The feed is read in `(txid, seq)` order, and only entries whose transaction
id is below the reading snapshot's `xmin` are handed out:

- every transaction below `xmin` has ended, so those entries are final (committed, visible);
- every transaction that may still commit an entry (running now, or not begun) has an id of at
  least `xmin`, above every entry handed out so far.

So a reader that asks for what comes after the last `(txid, seq)` it got never misses an entry.
Ordering by `seq` alone would not do: `seq` is drawn when the revoking row is written, the
transaction id when the transaction first writes, so a transaction with a smaller id can write
its entry (a larger `seq`) after another one did and commit first; its entry would be handed
out, and the other's smaller `seq` skipped for ever (the tests show that interleaving).

The table holds only the retention window (`purge_older_than`), and the index on
`(txid, seq)` makes each poll a range scan from the cursor on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

Connection: TypeAlias = asyncpg.Connection


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the feed: the last entry read (`0-0`: before the first)."""

    txid: int
    seq: int

    def __str__(self) -> str:
        return f"{self.txid}-{self.seq}"


START = Cursor(0, 0)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    txid: int
    kind: str
    session_id: uuid.UUID | None
    user_id: uuid.UUID
    token_version: int | None
    is_active: bool | None
    created_at: datetime


# One round trip: whether the cursor can be ours (a transaction id this database has already
# handed out), and the page after it. A cursor from another database (restored from a backup,
# recreated) may name a transaction id not reached yet here: the reader must start again.
_PAGE = """
SELECT s.known, r.seq, r.txid::text AS txid, r.kind, r.session_id, r.user_id,
       r.token_version, r.is_active, r.created_at
FROM (SELECT $1::text::xid8 < pg_snapshot_xmax(pg_current_snapshot()) AS known) AS s
LEFT JOIN LATERAL (
    SELECT seq, txid, kind, session_id, user_id, token_version, is_active, created_at
    FROM revocations
    WHERE (txid, seq) > ($1::text::xid8, $2::bigint)
      AND txid < pg_snapshot_xmin(pg_current_snapshot())
      AND created_at > now() - make_interval(secs => $3)
    ORDER BY txid, seq
    LIMIT $4
) AS r ON s.known
ORDER BY r.txid, r.seq
"""


class UnknownCursor(Exception):
    """The cursor names a transaction this database has not reached: not one of ours."""


async def page_after(
    db: Connection, cursor: Cursor, *, limit: int, retention_seconds: int
) -> list[Entry]:
    """Up to `limit` final entries after `cursor`, younger than `retention_seconds`."""
    rows = await db.fetch(_PAGE, str(cursor.txid), cursor.seq, float(retention_seconds), limit)
    if not rows or not rows[0]["known"]:
        raise UnknownCursor
    return [
        Entry(
            seq=row["seq"],
            txid=int(row["txid"]),
            kind=row["kind"],
            session_id=row["session_id"],
            user_id=row["user_id"],
            token_version=row["token_version"],
            is_active=row["is_active"],
            created_at=row["created_at"],
        )
        for row in rows
        if row["seq"] is not None
    ]


_PURGE = """
DELETE FROM revocations
WHERE seq IN (
    SELECT seq FROM revocations
    WHERE created_at < now() - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""


async def purge_older_than(db: Connection, seconds: int, batch_size: int) -> int:
    """Delete one batch of entries older than `seconds`; how many went."""
    status: str = await db.execute(_PURGE, float(seconds), batch_size)
    return int(status.rsplit(" ", 1)[-1])
