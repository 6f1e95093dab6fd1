"""SQL that reads many tasks at once: list pages (filters, sorts, keyset), the status view,
a board's first cards per column and a column's pages. Every statement is scoped to one owner
and reads index ranges only (tests/test_query_plans.py).

Statements are fixed text with `$n` parameters; a list's text varies only with the shape of the
request (sort, which filters are present), never with a value.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from tasks_service.repositories.tasks import SELECT, Connection, TaskRow

_ORDER = {
    "position": "status, position, id",
    "-created_at": "created_at DESC, id DESC",
    "-updated_at": "updated_at DESC, id DESC",
    "due_at": "due_at ASC NULLS LAST, id ASC",
}

_KEYSET_COLUMNS = {
    "position": ("status", "position", "id"),
    "-created_at": ("created_at", "id"),
    "-updated_at": ("updated_at", "id"),
    "due_at": ("due_at", "id"),
}


def sort_key(sort: str, row: TaskRow) -> list[Any]:
    """The keyset values of a list or board row for `sort`, in the order `page` expects."""
    return [row[column] for column in _KEYSET_COLUMNS[sort]]


async def page(
    db: Connection,
    owner_id: uuid.UUID,
    filters: dict[str, Any],
    sort: str,
    after: Sequence[Any] | None,
    limit: int,
) -> list[TaskRow]:
    """Up to `limit` tasks after the keyset `after` (None: from the start)."""
    present = tuple(name for name in FILTERS if filters.get(name) not in (None, []))
    params: list[Any] = [owner_id]
    for name in present:
        params.extend(FILTERS[name].values(filters[name]))
    keyset = _keyset_shape(sort, after)
    if after is not None:
        params.extend(value for value in after if value is not None)
    params.append(limit)
    return list(await db.fetch(_page_sql(sort, present, keyset), *params))


@dataclass(frozen=True)
class Filter:
    """One list filter: its SQL (`{}` placeholders numbered in order, `{0}` one value used
    twice) and the query values it binds, from the normalised value (`TaskListParams.filters`)."""

    sql: str
    values: Any


# Every filter of `GET /api/tasks`, in one place; `schemas.TaskListParams` validates and
# documents the same names. `q` is served by the trigram indexes (migration 0003).
FILTERS = {
    "status": Filter("status = ANY({}::task_status[])", lambda v: [[str(i) for i in v]]),
    "label": Filter("labels @> {}::varchar[]", lambda v: [list(v)]),
    "priority": Filter("priority = ANY({}::task_priority[])", lambda v: [[str(i) for i in v]]),
    "q": Filter(
        "(title ILIKE {0} ESCAPE '\\' OR description ILIKE {0} ESCAPE '\\')",
        lambda v: ["%" + _escape_like(v) + "%"],
    ),
    "due_before": Filter("due_at < {}", lambda v: [datetime.fromisoformat(v)]),
    "due_after": Filter("due_at > {}", lambda v: [datetime.fromisoformat(v)]),
    "completed": Filter("(status = 'done') = {}", lambda v: [bool(v)]),
    "board_id": Filter("board_id = {}::uuid", lambda v: [uuid.UUID(v)]),
    "column_id": Filter("column_id = {}::uuid", lambda v: [uuid.UUID(v)]),
}

# Rows strictly after the keyset in each sort's order.
_KEYSET_SQL = {
    "position": "(status, position, id) > ({}::task_status, {}, {})",
    "-created_at": "(created_at, id) < ({}, {})",
    "-updated_at": "(updated_at, id) < ({}, {})",
    "due_at": "((due_at, id) > ({}, {}) OR due_at IS NULL)",
    # Already in the undated tail, which is ordered by id.
    "due_at:undated": "(due_at IS NULL AND id > {})",
}


def _keyset_shape(sort: str, after: Sequence[Any] | None) -> str | None:
    if after is None:
        return None
    if sort == "due_at" and after[0] is None:
        return "due_at:undated"
    return sort


@lru_cache(maxsize=512)
def _page_sql(sort: str, present: tuple[str, ...], keyset: str | None) -> str:
    """The statement for one shape of list request, built once per shape."""
    number = 1  # $1 is the owner
    conditions = ["owner_id = $1"]
    clauses = [FILTERS[name].sql for name in present]
    if keyset is not None:
        clauses.append(_KEYSET_SQL[keyset])
    for clause in clauses:
        if "{0}" in clause:
            number += 1
            conditions.append(clause.format(f"${number}"))
            continue
        placeholders = []
        for _ in range(clause.count("{}")):
            number += 1
            placeholders.append(f"${number}")
        conditions.append(clause.format(*placeholders))
    return (
        f"SELECT {SELECT} FROM tasks WHERE {' AND '.join(conditions)}"
        f" ORDER BY {_ORDER[sort]} LIMIT ${number + 1}"
    )


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def status_board(db: Connection, owner_id: uuid.UUID, per_column: int) -> list[TaskRow]:
    """The first `per_column` tasks of each status (all boards, in the list's `position`
    order) with each status's total, in one statement: one snapshot, so the totals agree with
    the cards. Totals come from the columns' kept counts, cards from one index range each: the
    cost does not grow with the number of tasks."""
    return list(
        await db.fetch(
            f"""
            WITH totals AS (
                SELECT category, sum(task_count)::bigint AS total FROM board_columns
                WHERE owner_id = $1 GROUP BY category
            )
            SELECT cards.*, totals.total
            FROM unnest(enum_range(NULL::task_status)) AS statuses (status)
            JOIN totals ON totals.category = statuses.status
            CROSS JOIN LATERAL (
                SELECT {SELECT} FROM tasks
                WHERE owner_id = $1 AND status = statuses.status
                ORDER BY position, id LIMIT $2
            ) AS cards
            ORDER BY cards.status, cards.position, cards.id
            """,
            owner_id,
            per_column,
        )
    )


async def board_cards(
    db: Connection, owner_id: uuid.UUID, board_id: uuid.UUID, per_column: int
) -> list[TaskRow]:
    """The first `per_column` cards of every column of a board (one index range per column:
    positions are unique within a column, so `position` alone orders it)."""
    return list(
        await db.fetch(
            f"""
            SELECT cards.* FROM board_columns AS c
            CROSS JOIN LATERAL (
                SELECT {SELECT} FROM tasks WHERE column_id = c.id
                ORDER BY position LIMIT $3
            ) AS cards
            WHERE c.board_id = $1 AND c.owner_id = $2
            ORDER BY c.position, c.id, cards.position
            """,
            board_id,
            owner_id,
            per_column,
        )
    )


async def column_page(
    db: Connection,
    owner_id: uuid.UUID,
    column_id: uuid.UUID,
    after: int | None,
    limit: int,
) -> list[TaskRow]:
    """A column's cards in order, after the position `after` (None: from the start); positions
    are unique within a column, so they alone are the keyset."""
    if after is None:
        rows = await db.fetch(
            f"SELECT {SELECT} FROM tasks WHERE column_id = $1 AND owner_id = $2"
            " ORDER BY position LIMIT $3",
            column_id,
            owner_id,
            limit,
        )
    else:
        rows = await db.fetch(
            f"SELECT {SELECT} FROM tasks WHERE column_id = $1 AND owner_id = $2"
            " AND position > $3 ORDER BY position LIMIT $4",
            column_id,
            owner_id,
            after,
            limit,
        )
    return list(rows)
