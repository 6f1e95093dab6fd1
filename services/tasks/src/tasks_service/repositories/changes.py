"""SQL for the change log (migration 0004): reading one owner's entries after a cursor, the
owner's latest cursor, and purging old entries.

Entries are written by a trigger, never here. Each keeps the changed row as the table holds
it (`to_jsonb`); it is turned back into the same record type the other repositories return,
so the API renders a change exactly as it renders a read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson

from tasks_service.models import Priority, TaskStatus
from tasks_service.repositories.boards import BoardRecord, ColumnRecord
from tasks_service.repositories.tasks import Connection, TaskRecord

Record = TaskRecord | BoardRecord | ColumnRecord
_RECORDS: dict[str, type[Record]] = {
    "task": TaskRecord,
    "board": BoardRecord,
    "column": ColumnRecord,
}


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    seq: int
    entity: str  # "task", "board" or "column"
    entity_id: uuid.UUID
    version: int
    record: Record | None  # None: deleted (a tombstone)
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class ChangeRead:
    entries: list[ChangeEntry]
    latest: int  # the owner's last seq (0: none yet), or the purge horizon if later
    purged_through: int  # entries up to this seq are gone (0: none purged)


def _value(name: str, value: Any) -> Any:
    """A stored JSON value as the record holds it. The tables name their columns so that the
    name says the type: `id`/`*_id` are uuids, `*_at` times."""
    if value is None:
        return None
    if name == "id" or name.endswith("_id"):
        return uuid.UUID(value)
    if name.endswith("_at"):
        return datetime.fromisoformat(value).astimezone(UTC)
    if name in ("status", "category"):
        return TaskStatus(value)
    if name == "priority":
        return Priority(value)
    return value


def _record(entity: str, stored: dict[str, Any]) -> Record:
    cls = _RECORDS[entity]
    values = {field.name: _value(field.name, stored.get(field.name)) for field in fields(cls)}
    if cls is TaskRecord:
        values["completed"] = values["status"] is TaskStatus.DONE
        values["checklist"] = orjson.dumps(stored["checklist"]).decode()
    return cls(**values)


async def read(db: Connection, owner_id: uuid.UUID, after: int, limit: int) -> ChangeRead:
    """Up to `limit` entries after `after`, in commit order, with the owner's latest seq and
    purge horizon: one round trip, index lookups only (an empty read is one probe each)."""
    rows = await db.fetch(
        """
        SELECT h.purged_through,
               (SELECT max(seq) FROM changes WHERE owner_id = $1) AS latest,
               p.seq, p.entity, p.entity_id, p.version, p.data::text AS data, p.changed_at
        FROM (SELECT 1) AS one
        LEFT JOIN change_horizons AS h ON h.owner_id = $1
        LEFT JOIN LATERAL (
            SELECT seq, entity, entity_id, version, data, changed_at FROM changes
            WHERE owner_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
        ) AS p ON true
        ORDER BY p.seq
        """,
        owner_id,
        after,
        limit,
    )
    first = rows[0]
    purged = first["purged_through"] or 0
    entries = [
        ChangeEntry(
            seq=row["seq"],
            entity=row["entity"],
            entity_id=row["entity_id"],
            version=row["version"],
            record=_record(row["entity"], orjson.loads(row["data"])) if row["data"] else None,
            changed_at=row["changed_at"],
        )
        for row in rows
        if row["seq"] is not None
    ]
    return ChangeRead(entries, max(first["latest"] or 0, purged), purged)


async def purge(db: Connection, before: datetime, batch: int) -> int:
    """Remove up to `batch` entries older than `before`, recording per owner the last seq
    removed (a cursor below it can no longer be served). Returns how many were removed."""
    removed: int = await db.fetchval(
        """
        WITH gone AS (
            DELETE FROM changes WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM changes WHERE changed_at < $1 LIMIT $2
            ))
            RETURNING owner_id, seq
        ), horizons AS (
            INSERT INTO change_horizons (owner_id, purged_through)
            SELECT owner_id, max(seq) FROM gone GROUP BY owner_id
            ON CONFLICT (owner_id) DO UPDATE SET purged_through = greatest(
                change_horizons.purged_through, excluded.purged_through)
        )
        SELECT count(*) FROM gone
        """,
        before,
        batch,
    )
    return removed
