"""SQL for one task at a time (create, read, change, delete, place), run on asyncpg
connections; lists and board views are in `task_lists.py`. Every statement is scoped to one
owner.

Statements are fixed text with `$n` parameters (asyncpg prepares and caches each one per
connection); the list's text varies only with the shape of the request (sort, which filters
are present), never with a value. The schema itself lives in `models.py` and the migrations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from tasks_service.core.positions import GAP, LIMIT
from tasks_service.models import Priority, TaskStatus

Connection: TypeAlias = asyncpg.Connection
# Lists and the board hand back driver records (columns by name, in `COLUMNS` order):
# building objects for read-only pages costs more than the query.
TaskRow: TypeAlias = asyncpg.Record

# What the API shows, then the internal position (used for keyset cursors, never shown). The
# fields added with boards come last, so a task's JSON starts with the same bytes as before.
API_COLUMNS = (
    "id",
    "owner_id",
    "title",
    "description",
    "status",
    "priority",
    "due_at",
    "labels",
    "completed_at",
    "version",
    "created_at",
    "updated_at",
    "completed",
    "board_id",
    "column_id",
    "checklist",
)
COLUMNS = (*API_COLUMNS, "position")
# `completed` is what todo frontends show; the checklist is read as its JSON text, which the
# answer embeds as it is (task_json.py).
_EXPRESSIONS = {
    "completed": "(status = 'done') AS completed",
    "checklist": "checklist::text AS checklist",
}
SELECT = ", ".join(_EXPRESSIONS.get(name, name) for name in COLUMNS)


class Now:
    """A value meaning "the database's `now()`", for `completed_at`."""


NOW = Now()


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One stored task, for the single-task use cases (create, read, change, delete, move)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str
    status: TaskStatus
    priority: Priority
    due_at: datetime | None
    labels: list[str]
    completed_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    completed: bool
    board_id: uuid.UUID
    column_id: uuid.UUID
    checklist: str  # JSON text
    position: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> TaskRecord:
        values = dict(row.items())
        values["status"] = TaskStatus(values["status"])
        values["priority"] = Priority(values["priority"])
        return cls(**values)


def owner_lock(owner_id: uuid.UUID) -> str:
    """The statement that takes the owner's lock (`lock_owner`, migration 0004) until commit,
    for `DriverConnections.transaction(prelude=...)`.

    Every write of an owner holds it, taken before any row: it serialises one owner's
    placements ("read the neighbours, pick a position" becomes atomic without table locks)
    and makes the owner's change-log entries visible in `seq` order, which gapless sync
    needs. One user's concurrent writes are rare, so it costs nothing in practice.
    """
    return f"SELECT lock_owner('{uuid.UUID(str(owner_id))}'::uuid)"


async def add(db: Connection, owner_id: uuid.UUID, values: dict[str, Any]) -> TaskRecord:
    names = ["owner_id", *values]
    params: list[Any] = [owner_id]
    placeholders = ["$1"]
    for name in values:
        placeholders.append(f"{sql_value(params, values[name])}{_CASTS.get(name, '')}")
    row = await db.fetchrow(
        f"INSERT INTO tasks ({', '.join(names)}) VALUES ({', '.join(placeholders)})"
        f" RETURNING {SELECT}",
        *params,
    )
    return TaskRecord.from_row(row)


async def add_at_end(
    db: Connection, owner_id: uuid.UUID, values: dict[str, Any]
) -> TaskRecord | None:
    """Insert at the end of its column in one statement (the last position + `GAP`).

    None when that position would leave the allowed range: the caller then places the card
    with `placement.place`, which respaces the column. Needs the owner's lock, as `place` does.
    """
    params: list[Any] = [owner_id, LIMIT - GAP]
    names = list(values)
    placeholders = [f"{sql_value(params, values[name])}{_CASTS.get(name, '')}" for name in names]
    column = placeholders[names.index("column_id")]
    row = await db.fetchrow(
        f"INSERT INTO tasks (owner_id, {', '.join(names)}, position)"
        f" SELECT $1, {', '.join(placeholders)}, last + {GAP} FROM ("
        f"  SELECT coalesce(max(position), 0) AS last FROM tasks WHERE column_id = {column}"
        f") AS col WHERE last < $2 RETURNING {SELECT}",
        *params,
    )
    return TaskRecord.from_row(row) if row is not None else None


# Types PostgreSQL cannot infer for parameters in an INSERT ... SELECT list.
_CASTS = {
    "status": "::task_status",
    "priority": "::task_priority",
    "labels": "::varchar[]",
    "due_at": "::timestamptz",
    "completed_at": "::timestamptz",
    "id": "::uuid",
    "title": "::varchar",
    "description": "::text",
    "board_id": "::uuid",
    "column_id": "::uuid",
    "checklist": "::jsonb",
}


async def get(
    db: Connection, owner_id: uuid.UUID, task_id: uuid.UUID, *, for_update: bool = False
) -> TaskRecord | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await db.fetchrow(
        f"SELECT {SELECT} FROM tasks WHERE id = $1 AND owner_id = $2{lock}", task_id, owner_id
    )
    return TaskRecord.from_row(row) if row is not None else None


async def change(db: Connection, task: TaskRecord, values: dict[str, Any]) -> TaskRecord:
    """Apply `values`, bump the version and `updated_at`, and return the new row."""
    params: list[Any] = [task.id, task.owner_id]
    assignments = [
        f"{name} = {sql_value(params, value)}{_CASTS.get(name, '')}"
        for name, value in values.items()
    ]
    assignments += ["version = version + 1", "updated_at = now()"]
    row = await db.fetchrow(
        f"UPDATE tasks SET {', '.join(assignments)} WHERE id = $1 AND owner_id = $2"
        f" RETURNING {SELECT}",
        *params,
    )
    return TaskRecord.from_row(row)


async def remove(db: Connection, task: TaskRecord) -> None:
    await db.execute("DELETE FROM tasks WHERE id = $1 AND owner_id = $2", task.id, task.owner_id)


async def change_in_place(
    db: Connection,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    values: dict[str, Any],
    versions: list[int] | None,
) -> TaskRecord | None:
    """One statement: write `values` (bumping the version) unless they are the stored ones
    already, and only while the version is one of `versions` (None: any).

    None when nothing was written: the caller reads the row to say why (404, 412, no change).
    """
    params: list[Any] = [task_id, owner_id]
    placeholders = {
        name: f"{sql_value(params, value)}{_CASTS.get(name, '')}" for name, value in values.items()
    }
    assignments = [f"{name} = {placeholder}" for name, placeholder in placeholders.items()]
    differs = [
        f"{name} IS DISTINCT FROM {placeholder}" for name, placeholder in placeholders.items()
    ]
    # The owner's lock is taken by the statement itself, before it locks the row (see
    # `owner_lock`): the join with a one-row subquery evaluates it before the update.
    sql = (
        f"UPDATE tasks SET {', '.join(assignments)}, version = version + 1, updated_at = now()"
        " FROM (SELECT lock_owner($2)) AS locked"
        f" WHERE id = $1 AND owner_id = $2 AND ({' OR '.join(differs)})"
    )
    if versions is not None:
        sql += f" AND version = ANY({sql_value(params, versions)}::int[])"
    row = await db.fetchrow(f"{sql} RETURNING {SELECT}", *params)
    return TaskRecord.from_row(row) if row is not None else None


async def remove_in_place(
    db: Connection, owner_id: uuid.UUID, task_id: uuid.UUID, versions: list[int] | None
) -> bool:
    """One statement: delete the task while its version is one of `versions` (None: any),
    holding the owner's lock as `change_in_place` does."""
    sql = (
        "DELETE FROM tasks USING (SELECT lock_owner($2)) AS locked WHERE id = $1 AND owner_id = $2"
    )
    params: list[Any] = [task_id, owner_id]
    if versions is not None:
        sql += f" AND version = ANY({sql_value(params, versions)}::int[])"
    return await db.fetchval(f"{sql} RETURNING true", *params) is not None


def sql_value(params: list[Any], value: Any) -> str:
    """Append `value` to `params` and return its placeholder (`now()` for `NOW`)."""
    if value is NOW:
        return "now()"
    params.append(value)
    return f"${len(params)}"


async def last_position(db: Connection, column_id: uuid.UUID, *, exclude: uuid.UUID) -> int | None:
    value: int | None = await db.fetchval(
        "SELECT max(position) FROM tasks WHERE column_id = $1 AND id <> $2", column_id, exclude
    )
    return value


async def position_of(db: Connection, owner_id: uuid.UUID, task_id: uuid.UUID) -> int | None:
    value: int | None = await db.fetchval(
        "SELECT position FROM tasks WHERE owner_id = $1 AND id = $2", owner_id, task_id
    )
    return value


async def neighbour_position(
    db: Connection,
    column_id: uuid.UUID,
    position: int,
    *,
    below: bool,
    exclude: uuid.UUID,
) -> int | None:
    """The closest position before (`below`) or after `position` in a column, skipping `exclude`."""
    edge, compare = ("max", "<") if below else ("min", ">")
    value: int | None = await db.fetchval(
        f"SELECT {edge}(position) FROM tasks WHERE column_id = $1 AND id <> $2"
        f" AND position {compare} $3",
        column_id,
        exclude,
        position,
    )
    return value


async def rebalance(db: Connection, column_id: uuid.UUID, exclude: uuid.UUID) -> None:
    """Respace a column's positions `GAP` apart, keeping the order (the unique check is deferred).

    Versions are not bumped: positions are internal, the visible order does not change.
    """
    await db.execute(
        """
        UPDATE tasks SET position = ranked.rank * $3
        FROM (
            SELECT id, row_number() OVER (ORDER BY position, id) AS rank FROM tasks
            WHERE column_id = $1 AND id <> $2
        ) AS ranked
        WHERE tasks.id = ranked.id
        """,
        column_id,
        exclude,
        GAP,
    )
