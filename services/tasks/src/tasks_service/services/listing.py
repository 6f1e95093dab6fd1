"""Listing a user's tasks (keyset pages under several sorts) and the Kanban board."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.cursor import InvalidCursor, decode_cursor, encode_cursor, fingerprint
from tasks_service.models import TaskStatus
from tasks_service.repositories import tasks
from tasks_service.repositories.tasks import TaskRow
from tasks_service.schemas import TaskListParams


@dataclass(frozen=True)
class ListRequest:
    params: TaskListParams
    filters: dict[str, Any]
    after: list[Any] | None


@dataclass(frozen=True)
class Page:
    items: list[TaskRow]
    next_cursor: str | None


@dataclass(frozen=True)
class Column:
    status: TaskStatus
    total: int
    items: list[TaskRow]
    next_cursor: str | None


def prepare(params: TaskListParams) -> ListRequest:
    """Check the cursor against the sort and filters; raises `InvalidCursor`."""
    filters = params.filters()
    after = None
    if params.cursor is not None:
        raw = decode_cursor(params.cursor, params.sort, fingerprint(filters))
        after = _typed_key(params.sort, raw)
    return ListRequest(params=params, filters=filters, after=after)


def _typed_key(sort: str, raw: list[Any]) -> list[Any]:
    try:
        if sort == "position":
            status, position, task_id = raw
            if isinstance(position, bool) or not isinstance(position, int):
                raise InvalidCursor("bad position")
            if not -(2**63) <= position < 2**63:
                raise InvalidCursor("bad position")
            return [TaskStatus(status), position, uuid.UUID(task_id)]
        stamp, task_id = raw
        if stamp is None and sort == "due_at":
            return [None, uuid.UUID(task_id)]
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise InvalidCursor("naive time")
        return [moment, uuid.UUID(task_id)]
    except (ValueError, TypeError, AttributeError):
        raise InvalidCursor("the cursor is not one this service issued") from None


def _jsonable(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(value, datetime):
            out.append(value.isoformat())
        elif isinstance(value, uuid.UUID | TaskStatus):
            out.append(str(value))
        else:
            out.append(value)
    return out


def _next_cursor(sort: str, filters: dict[str, Any], last: TaskRow) -> str:
    return encode_cursor(sort, fingerprint(filters), _jsonable(tasks.sort_key(sort, last)))


async def list_tasks(ctx: TasksContext, principal: Principal, request: ListRequest) -> Page:
    params = request.params
    async with ctx.db.connect() as db:
        rows = await tasks.page(
            db, principal.user_id, request.filters, params.sort, request.after, params.limit + 1
        )
    if len(rows) <= params.limit:
        return Page(items=rows, next_cursor=None)
    items = rows[: params.limit]
    return Page(items=items, next_cursor=_next_cursor(params.sort, request.filters, items[-1]))


async def board(ctx: TasksContext, principal: Principal, per_column: int) -> list[Column]:
    """Every column with its first cards; `next_cursor` continues it on GET /api/tasks."""
    async with ctx.db.connect() as db:
        rows = await tasks.board(db, principal.user_id, per_column)
    columns = []
    for status in TaskStatus:
        items = [row for row in rows if row["status"] == status]
        total = items[0]["total"] if items else 0
        cursor = None
        if total > len(items):
            filters = TaskListParams(status=[status]).filters()
            cursor = _next_cursor("position", filters, items[-1])
        columns.append(Column(status=status, total=total, items=items, next_cursor=cursor))
    return columns
