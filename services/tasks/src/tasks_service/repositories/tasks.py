"""SQL for the `tasks` table. Every statement is scoped to one owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tasks_service.core.positions import GAP
from tasks_service.models import Task, TaskStatus


async def lock_owner(session: AsyncSession, owner_id: uuid.UUID) -> None:
    """Serialise the owner's placements (create, move, column change) until commit.

    One user's concurrent writes are rare, so this costs nothing in practice and makes
    "read the neighbours, pick a position" atomic without table locks.
    """
    key = int.from_bytes(owner_id.bytes[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def add(session: AsyncSession, owner_id: uuid.UUID, values: dict[str, Any]) -> Task:
    statement = insert(Task).values(owner_id=owner_id, **values).returning(Task)
    return (await session.scalars(statement)).one()


async def get(
    session: AsyncSession, owner_id: uuid.UUID, task_id: uuid.UUID, *, for_update: bool = False
) -> Task | None:
    statement = select(Task).where(Task.id == task_id, Task.owner_id == owner_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def change(session: AsyncSession, task: Task, values: dict[str, Any]) -> Task:
    """Apply `values`, bump the version and `updated_at`, and return the new row."""
    statement = (
        update(Task)
        .where(Task.id == task.id, Task.owner_id == task.owner_id)
        .values(**values, version=Task.version + 1, updated_at=func.now())
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def remove(session: AsyncSession, task: Task) -> None:
    await session.execute(delete(Task).where(Task.id == task.id, Task.owner_id == task.owner_id))


async def last_position(
    session: AsyncSession, owner_id: uuid.UUID, status: TaskStatus, *, exclude: uuid.UUID
) -> int | None:
    statement = select(func.max(Task.position)).where(
        Task.owner_id == owner_id, Task.status == status, Task.id != exclude
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def position_of(session: AsyncSession, owner_id: uuid.UUID, task_id: uuid.UUID) -> int | None:
    statement = select(Task.position).where(Task.owner_id == owner_id, Task.id == task_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def neighbour_position(
    session: AsyncSession,
    owner_id: uuid.UUID,
    status: TaskStatus,
    position: int,
    *,
    below: bool,
    exclude: uuid.UUID,
) -> int | None:
    """The closest position before (`below`) or after `position` in a column, skipping `exclude`."""
    scope = [Task.owner_id == owner_id, Task.status == status, Task.id != exclude]
    if below:
        statement = select(func.max(Task.position)).where(*scope, Task.position < position)
    else:
        statement = select(func.min(Task.position)).where(*scope, Task.position > position)
    return (await session.execute(statement)).scalar_one_or_none()


async def rebalance(
    session: AsyncSession, owner_id: uuid.UUID, status: TaskStatus, exclude: uuid.UUID
) -> None:
    """Respace a column's positions `GAP` apart, keeping the order (the unique check is deferred).

    Versions are not bumped: positions are internal, the visible order does not change.
    """
    ranked = (
        select(Task.id, func.row_number().over(order_by=Task.position).label("rank"))
        .where(Task.owner_id == owner_id, Task.status == status, Task.id != exclude)
        .subquery()
    )
    await session.execute(
        update(Task)
        .where(Task.id == ranked.c.id)
        .values(position=ranked.c.rank * GAP)
        .execution_options(synchronize_session=False)
    )


def _filters(owner_id: uuid.UUID, filters: dict[str, Any]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Task.owner_id == owner_id]
    if filters["status"]:
        conditions.append(Task.status.in_(filters["status"]))
    if filters["label"]:
        conditions.append(Task.labels.contains(filters["label"]))
    if filters["priority"]:
        conditions.append(Task.priority.in_(filters["priority"]))
    if filters["q"]:
        pattern = "%" + _escape_like(filters["q"]) + "%"
        conditions.append(
            or_(
                Task.title.ilike(pattern, escape="\\"),
                Task.description.ilike(pattern, escape="\\"),
            )
        )
    if filters["due_before"] is not None:
        conditions.append(Task.due_at < datetime.fromisoformat(filters["due_before"]))
    if filters["due_after"] is not None:
        conditions.append(Task.due_at > datetime.fromisoformat(filters["due_after"]))
    if filters["completed"] is not None:
        done = Task.status == TaskStatus.DONE
        conditions.append(done if filters["completed"] else ~done)
    return conditions


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _order(sort: str) -> list[Any]:
    if sort == "position":
        return [Task.status, Task.position, Task.id]
    if sort == "-created_at":
        return [Task.created_at.desc(), Task.id.desc()]
    if sort == "-updated_at":
        return [Task.updated_at.desc(), Task.id.desc()]
    return [Task.due_at.asc().nulls_last(), Task.id.asc()]


def _after(sort: str, key: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `key` in `sort` order (the keyset condition)."""
    if sort == "position":
        return tuple_(Task.status, Task.position, Task.id) > tuple_(
            literal(key[0], Task.status.type), literal(key[1], Task.position.type), _id(key[2])
        )
    if sort in ("-created_at", "-updated_at"):
        column = Task.created_at if sort == "-created_at" else Task.updated_at
        return tuple_(column, Task.id) < tuple_(_stamp(key[0]), _id(key[1]))
    due, task_id = key
    if due is None:  # already in the undated tail, ordered by id
        return and_(Task.due_at.is_(None), Task.id > _id(task_id))
    return or_(
        tuple_(Task.due_at, Task.id) > tuple_(_stamp(due), _id(task_id)),
        Task.due_at.is_(None),
    )


def _stamp(value: datetime) -> ColumnElement[datetime]:
    return literal(value, Task.created_at.type)


def _id(value: uuid.UUID) -> ColumnElement[uuid.UUID]:
    return literal(value, Task.id.type)


# Lists and the board read plain rows (same attribute names as `Task`): building ORM objects
# for read-only pages costs more than the query itself.
TaskRow = Row[Any]
_COLUMNS = tuple(Task.__table__.columns)


def sort_key(sort: str, task: Task | TaskRow) -> list[Any]:
    """The keyset values of `task` for `sort`, in the order `_after` expects."""
    if sort == "position":
        return [task.status, task.position, task.id]
    if sort == "-created_at":
        return [task.created_at, task.id]
    if sort == "-updated_at":
        return [task.updated_at, task.id]
    return [task.due_at, task.id]


async def page(
    session: AsyncSession,
    owner_id: uuid.UUID,
    filters: dict[str, Any],
    sort: str,
    after: Sequence[Any] | None,
    limit: int,
) -> list[TaskRow]:
    """Up to `limit` tasks after the keyset `after` (None: from the start)."""
    conditions = _filters(owner_id, filters)
    conditions.append(_after(sort, after) if after is not None else true())
    statement = select(*_COLUMNS).where(*conditions).order_by(*_order(sort)).limit(limit)
    return list((await session.execute(statement)).all())


async def board(session: AsyncSession, owner_id: uuid.UUID, per_column: int) -> list[TaskRow]:
    """The first `per_column` cards of every column, in one query."""
    ranked = (
        select(
            Task.id,
            func.row_number()
            .over(partition_by=Task.status, order_by=(Task.position, Task.id))
            .label("rank"),
        )
        .where(Task.owner_id == owner_id)
        .subquery()
    )
    statement = (
        select(*_COLUMNS)
        .join(ranked, ranked.c.id == Task.id)
        .where(ranked.c.rank <= per_column)
        .order_by(Task.status, Task.position, Task.id)
    )
    return list((await session.execute(statement)).all())


async def column_totals(session: AsyncSession, owner_id: uuid.UUID) -> dict[TaskStatus, int]:
    total = func.count().label("total")
    statement = select(Task.status, total).where(Task.owner_id == owner_id).group_by(Task.status)
    return {row.status: row.total for row in (await session.execute(statement)).all()}
