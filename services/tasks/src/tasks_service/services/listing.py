"""Reading many tasks at once: lists (keyset pages under several sorts), a board with its
columns' first cards, a column's further pages, and the status view from before boards.

Every read here costs the same however many tasks the user has: index ranges and the columns'
kept counts, never a count or a sort of all the user's rows (tests/test_query_plans.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.cursor import decode_cursor, encode_cursor
from tasks_service.models import TaskStatus
from tasks_service.repositories import boards, task_lists
from tasks_service.repositories.boards import BoardRecord, ColumnRecord
from tasks_service.repositories.tasks import TaskRow
from tasks_service.schemas import PageParams, TaskListParams
from tasks_service.services.boards import get_board, get_column


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
class StatusColumn:
    status: TaskStatus
    total: int
    items: list[TaskRow]
    next_cursor: str | None


@dataclass(frozen=True)
class BoardColumn:
    column: ColumnRecord
    items: list[TaskRow]
    next_cursor: str | None


@dataclass(frozen=True)
class BoardView:
    board: BoardRecord
    columns: list[BoardColumn]


def prepare(ctx: TasksContext, params: TaskListParams) -> ListRequest:
    """Check the cursor against the sort, the filters and its signature; raises `InvalidCursor`."""
    filters = params.filters()
    after = None
    if params.cursor is not None:
        after = decode_cursor(ctx.settings.cursor_key, params.cursor, params.sort, filters)
    return ListRequest(params=params, filters=filters, after=after)


def _next_cursor(ctx: TasksContext, sort: str, filters: dict[str, Any], last: TaskRow) -> str:
    return encode_cursor(ctx.settings.cursor_key, sort, filters, task_lists.sort_key(sort, last))


async def list_tasks(ctx: TasksContext, principal: Principal, request: ListRequest) -> Page:
    params = request.params
    async with ctx.db.connect() as db:
        rows = await task_lists.page(
            db, principal.user_id, request.filters, params.sort, request.after, params.limit + 1
        )
    if len(rows) <= params.limit:
        return Page(items=rows, next_cursor=None)
    items = rows[: params.limit]
    return Page(items=items, next_cursor=_next_cursor(ctx, params.sort, request.filters, items[-1]))


async def status_board(
    ctx: TasksContext, principal: Principal, per_column: int
) -> list[StatusColumn]:
    """Every status with its first cards; `next_cursor` continues it on GET /api/tasks."""
    async with ctx.db.connect() as db:
        rows = await task_lists.status_board(db, principal.user_id, per_column)
    columns = []
    for status in TaskStatus:
        items = [row for row in rows if row["status"] == status]
        total = items[0]["total"] if items else 0
        cursor = None
        if total > len(items):
            filters = TaskListParams(status=[status]).filters()
            cursor = _next_cursor(ctx, "position", filters, items[-1])
        columns.append(StatusColumn(status=status, total=total, items=items, next_cursor=cursor))
    return columns


def _column_filters(column_id: uuid.UUID) -> dict[str, Any]:
    return {"column_id": str(column_id)}


async def board_view(
    ctx: TasksContext, principal: Principal, board_id: uuid.UUID, per_column: int
) -> BoardView:
    """The board, its columns in order with their totals, and each column's first cards, read
    from one snapshot so the totals agree with the cards."""
    owner = principal.user_id
    async with ctx.db.transaction(snapshot=True) as db:
        board = await get_board(db, owner, board_id)
        columns = await boards.columns_of(db, board.id)
        rows = await task_lists.board_cards(db, owner, board.id, per_column)
    by_column: dict[uuid.UUID, list[TaskRow]] = {column.id: [] for column in columns}
    for row in rows:
        by_column[row["column_id"]].append(row)
    views = []
    for column in columns:
        items = by_column[column.id]
        cursor = None
        if column.task_count > len(items):
            cursor = _next_cursor(ctx, "position", _column_filters(column.id), items[-1])
        views.append(BoardColumn(column=column, items=items, next_cursor=cursor))
    return BoardView(board=board, columns=views)


async def column_page(
    ctx: TasksContext, principal: Principal, column_id: uuid.UUID, params: PageParams
) -> Page:
    """A column's cards after a cursor from the board view or an earlier page; raises
    `InvalidCursor` for a cursor made for another column or query."""
    filters = _column_filters(column_id)
    after = None
    if params.cursor is not None:
        after = decode_cursor(ctx.settings.cursor_key, params.cursor, "position", filters)
    owner = principal.user_id
    async with ctx.db.connect() as db:
        await get_column(db, owner, column_id)
        rows = await task_lists.column_page(
            db, owner, column_id, after[1] if after else None, params.limit + 1
        )
    if len(rows) <= params.limit:
        return Page(items=rows, next_cursor=None)
    items = rows[: params.limit]
    return Page(items=items, next_cursor=_next_cursor(ctx, "position", filters, items[-1]))
