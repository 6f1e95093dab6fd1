"""SQL for boards and their columns. Every statement is scoped to one owner.

Boards and columns are few per user (bounded by `MAX_BOARDS`, `MAX_COLUMNS`), so reordering
renumbers the siblings in one statement; a column's `task_count` is kept by a trigger on `tasks`
(migration 0003) and only read here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from tasks_service.core.positions import GAP
from tasks_service.models import TaskStatus
from tasks_service.repositories.tasks import Connection, sql_value

MAX_BOARDS = 100
MAX_COLUMNS = 50
DEFAULT_BOARD_NAME = "My board"
DEFAULT_COLUMNS = (
    ("To do", TaskStatus.TODO),
    ("In progress", TaskStatus.IN_PROGRESS),
    ("Done", TaskStatus.DONE),
)

BOARD_COLUMNS = (
    "id",
    "owner_id",
    "name",
    "position",
    "is_default",
    "archived_at",
    "version",
    "created_at",
    "updated_at",
)
COLUMN_COLUMNS = (
    "id",
    "board_id",
    "owner_id",
    "name",
    "category",
    "position",
    "wip_limit",
    "task_count",
    "version",
    "created_at",
    "updated_at",
)
_BOARD = ", ".join(BOARD_COLUMNS)
_COLUMN = ", ".join(COLUMN_COLUMNS)


@dataclass(frozen=True, slots=True)
class BoardRecord:
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    position: int
    is_default: bool
    archived_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> BoardRecord:
        return cls(**dict(row.items()))


@dataclass(frozen=True, slots=True)
class ColumnRecord:
    id: uuid.UUID
    board_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    category: TaskStatus
    position: int
    wip_limit: int | None
    task_count: int
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ColumnRecord:
        values = dict(row.items())
        values["category"] = TaskStatus(values["category"])
        return cls(**values)

    def is_full(self, adding: int = 1) -> bool:
        return self.wip_limit is not None and self.task_count + adding > self.wip_limit


# -- boards -----------------------------------------------------------------------------------


async def default_board(db: Connection, owner_id: uuid.UUID) -> BoardRecord | None:
    row = await db.fetchrow(
        f"SELECT {_BOARD} FROM boards WHERE owner_id = $1 AND is_default", owner_id
    )
    return BoardRecord.from_row(row) if row is not None else None


async def add_board(
    db: Connection, owner_id: uuid.UUID, name: str, *, is_default: bool = False
) -> BoardRecord:
    """At the end of the owner's boards."""
    row = await db.fetchrow(
        f"""
        INSERT INTO boards (id, owner_id, name, is_default, position)
        SELECT $2, $1, $3, $4, coalesce(max(position), 0) + {GAP} FROM boards WHERE owner_id = $1
        RETURNING {_BOARD}
        """,
        owner_id,
        uuid.uuid4(),
        name,
        is_default,
    )
    return BoardRecord.from_row(row)


async def count_boards(db: Connection, owner_id: uuid.UUID) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM boards WHERE owner_id = $1", owner_id)
    return count


async def list_boards(
    db: Connection, owner_id: uuid.UUID, *, archived: bool | None
) -> list[BoardRecord]:
    condition = "" if archived is None else " AND (archived_at IS NOT NULL) = $2"
    params: list[Any] = [owner_id] if archived is None else [owner_id, archived]
    rows = await db.fetch(
        f"SELECT {_BOARD} FROM boards WHERE owner_id = $1{condition} ORDER BY position, id",
        *params,
    )
    return [BoardRecord.from_row(row) for row in rows]


async def get_board(
    db: Connection, owner_id: uuid.UUID, board_id: uuid.UUID, *, for_update: bool = False
) -> BoardRecord | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await db.fetchrow(
        f"SELECT {_BOARD} FROM boards WHERE id = $1 AND owner_id = $2{lock}", board_id, owner_id
    )
    return BoardRecord.from_row(row) if row is not None else None


async def change_board(db: Connection, board: BoardRecord, values: dict[str, Any]) -> BoardRecord:
    params: list[Any] = [board.id, board.owner_id]
    assignments = [f"{name} = {sql_value(params, value)}" for name, value in values.items()]
    row = await db.fetchrow(
        f"UPDATE boards SET {', '.join(assignments)}, version = version + 1, updated_at = now()"
        f" WHERE id = $1 AND owner_id = $2 RETURNING {_BOARD}",
        *params,
    )
    return BoardRecord.from_row(row)


async def remove_board(db: Connection, board: BoardRecord) -> None:
    """The board, its columns and their tasks (foreign keys cascade)."""
    await db.execute("DELETE FROM boards WHERE id = $1 AND owner_id = $2", board.id, board.owner_id)


async def board_task_count(db: Connection, board_id: uuid.UUID) -> int:
    count: int = await db.fetchval(
        "SELECT coalesce(sum(task_count), 0) FROM board_columns WHERE board_id = $1", board_id
    )
    return count


async def renumber_boards(
    db: Connection, owner_id: uuid.UUID, ordered: Sequence[uuid.UUID]
) -> None:
    await _renumber(db, "boards", "owner_id", owner_id, ordered)


# -- columns ----------------------------------------------------------------------------------


async def add_column(
    db: Connection,
    board: BoardRecord,
    name: str,
    category: TaskStatus,
    wip_limit: int | None,
) -> ColumnRecord:
    """At the end of the board's columns."""
    row = await db.fetchrow(
        f"""
        INSERT INTO board_columns (id, board_id, owner_id, name, category, wip_limit, position)
        SELECT $3, $1, $2, $4, $5, $6, coalesce(max(position), 0) + {GAP}
        FROM board_columns WHERE board_id = $1
        RETURNING {_COLUMN}
        """,
        board.id,
        board.owner_id,
        uuid.uuid4(),
        name,
        category,
        wip_limit,
    )
    return ColumnRecord.from_row(row)


async def columns_of(db: Connection, board_id: uuid.UUID) -> list[ColumnRecord]:
    rows = await db.fetch(
        f"SELECT {_COLUMN} FROM board_columns WHERE board_id = $1 ORDER BY position, id", board_id
    )
    return [ColumnRecord.from_row(row) for row in rows]


async def get_column(
    db: Connection, owner_id: uuid.UUID, column_id: uuid.UUID, *, for_update: bool = False
) -> ColumnRecord | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await db.fetchrow(
        f"SELECT {_COLUMN} FROM board_columns WHERE id = $1 AND owner_id = $2{lock}",
        column_id,
        owner_id,
    )
    return ColumnRecord.from_row(row) if row is not None else None


async def first_column(
    db: Connection, owner_id: uuid.UUID, board_id: uuid.UUID, category: TaskStatus
) -> ColumnRecord | None:
    """The board's first column of a category: where the todo API's statuses lead."""
    row = await db.fetchrow(
        f"SELECT {_COLUMN} FROM board_columns WHERE board_id = $1 AND owner_id = $2"
        " AND category = $3 ORDER BY position, id LIMIT 1",
        board_id,
        owner_id,
        category,
    )
    return ColumnRecord.from_row(row) if row is not None else None


async def default_column(
    db: Connection, owner_id: uuid.UUID, category: TaskStatus
) -> ColumnRecord | None:
    """The first column of a category on the owner's default board, in one statement (the path
    of every create that names no board)."""
    row = await db.fetchrow(
        f"""
        SELECT {", ".join("c." + name for name in COLUMN_COLUMNS)}
        FROM boards AS b JOIN board_columns AS c ON c.board_id = b.id
        WHERE b.owner_id = $1 AND b.is_default AND c.category = $2
        ORDER BY c.position, c.id LIMIT 1
        """,
        owner_id,
        category,
    )
    return ColumnRecord.from_row(row) if row is not None else None


async def change_column(
    db: Connection, column: ColumnRecord, values: dict[str, Any]
) -> ColumnRecord:
    params: list[Any] = [column.id, column.owner_id]
    assignments = [f"{name} = {sql_value(params, value)}" for name, value in values.items()]
    row = await db.fetchrow(
        f"UPDATE board_columns SET {', '.join(assignments)}, version = version + 1,"
        f" updated_at = now() WHERE id = $1 AND owner_id = $2 RETURNING {_COLUMN}",
        *params,
    )
    return ColumnRecord.from_row(row)


async def remove_column(db: Connection, column: ColumnRecord) -> None:
    await db.execute(
        "DELETE FROM board_columns WHERE id = $1 AND owner_id = $2", column.id, column.owner_id
    )


async def renumber_columns(
    db: Connection, board_id: uuid.UUID, ordered: Sequence[uuid.UUID]
) -> None:
    await _renumber(db, "board_columns", "board_id", board_id, ordered)


async def recategorise_tasks(db: Connection, column: ColumnRecord, category: TaskStatus) -> None:
    """A column's new meaning reaches its tasks: their status and `completed_at` follow it."""
    completed = "now()" if category is TaskStatus.DONE else "NULL"
    await db.execute(
        f"UPDATE tasks SET status = $2, completed_at = {completed}, version = version + 1,"
        " updated_at = now() WHERE column_id = $1 AND status <> $2",
        column.id,
        category,
    )


async def move_all_tasks(db: Connection, source: ColumnRecord, target: ColumnRecord) -> int:
    """Every task of `source` to the end of `target`, keeping their order; their status and
    `completed_at` follow the target's category. Returns how many moved."""
    completed = "coalesce(completed_at, now())" if target.category is TaskStatus.DONE else "NULL"
    status: str = await db.execute(
        f"""
        UPDATE tasks SET column_id = $2, board_id = $3, status = $4,
               completed_at = {completed},
               position = (SELECT coalesce(max(position), 0) FROM tasks WHERE column_id = $2)
                          + moved.rank * {GAP},
               version = version + 1, updated_at = now()
        FROM (SELECT id, row_number() OVER (ORDER BY position, id) AS rank
              FROM tasks WHERE column_id = $1) AS moved
        WHERE tasks.id = moved.id
        """,
        source.id,
        target.id,
        target.board_id,
        target.category,
    )
    return int(status.split()[-1])


async def _renumber(
    db: Connection, table: str, scope: str, scope_id: uuid.UUID, ordered: Sequence[uuid.UUID]
) -> None:
    """Positions `GAP` apart in the given order (the unique check is deferred to commit)."""
    await db.execute(
        f"UPDATE {table} SET position = ordered.rank * {GAP}"
        f" FROM unnest($2::uuid[]) WITH ORDINALITY AS ordered (id, rank)"
        f" WHERE {table}.id = ordered.id AND {table}.{scope} = $1",
        scope_id,
        list(ordered),
    )
