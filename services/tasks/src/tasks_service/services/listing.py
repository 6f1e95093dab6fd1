"""Listing a user's tasks (keyset pages under several sorts) and the Kanban board."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.cursor import decode_cursor, encode_cursor
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


def prepare(ctx: TasksContext, params: TaskListParams) -> ListRequest:
    """Check the cursor against the sort, the filters and its signature; raises `InvalidCursor`."""
    filters = params.filters()
    after = None
    if params.cursor is not None:
        after = decode_cursor(ctx.settings.cursor_key, params.cursor, params.sort, filters)
    return ListRequest(params=params, filters=filters, after=after)


def _next_cursor(ctx: TasksContext, sort: str, filters: dict[str, Any], last: TaskRow) -> str:
    return encode_cursor(ctx.settings.cursor_key, sort, filters, tasks.sort_key(sort, last))


async def list_tasks(ctx: TasksContext, principal: Principal, request: ListRequest) -> Page:
    params = request.params
    async with ctx.db.connect() as db:
        rows = await tasks.page(
            db, principal.user_id, request.filters, params.sort, request.after, params.limit + 1
        )
    if len(rows) <= params.limit:
        return Page(items=rows, next_cursor=None)
    items = rows[: params.limit]
    return Page(items=items, next_cursor=_next_cursor(ctx, params.sort, request.filters, items[-1]))


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
            cursor = _next_cursor(ctx, "position", filters, items[-1])
        columns.append(Column(status=status, total=total, items=items, next_cursor=cursor))
    return columns
